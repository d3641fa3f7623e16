//! Usage charts drawn on the server as SVG: no chart script, nothing the
//! CSP has to allow (presentation attributes only, no `style`), readable
//! by screen readers through a title and a description, and every text
//! escaped (tool names come from the usage rows, which record whatever a
//! client asked for).

use std::fmt::Write;

/// Escapes text for SVG/HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const WIDTH: u32 = 640;
const HEIGHT: u32 = 160;
const BAR: &str = "#1d4ed8";
const AXIS: &str = "#4a5568";

/// Calls per day of a month as bars: `days` holds `(day of month, calls)`
/// for the days with calls; `days_in_month` bars are drawn.
pub fn per_day(days: &[(u32, u32)], days_in_month: u32, title: &str, desc: &str) -> String {
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let slot = f64::from(WIDTH - 40) / f64::from(days_in_month.max(1));
    let plot = f64::from(HEIGHT - 30);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"chart-day-title chart-day-desc\" class=\"chart\">\
<title id=\"chart-day-title\">{}</title><desc id=\"chart-day-desc\">{}</desc>",
        escape(title),
        escape(desc)
    );
    let _ = write!(
        svg,
        "<line x1=\"30\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{AXIS}\" stroke-width=\"1\"/>\
<text x=\"0\" y=\"12\" font-size=\"11\" fill=\"{AXIS}\">{max}</text>\
<text x=\"0\" y=\"{y}\" font-size=\"11\" fill=\"{AXIS}\">0</text>",
        y = HEIGHT - 20,
        x2 = WIDTH - 5
    );
    for day in 1..=days_in_month {
        let n = days.iter().find(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
        let h = plot * f64::from(n) / f64::from(max);
        let x = 32.0 + slot * f64::from(day - 1);
        if n > 0 {
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{BAR}\"><title>{day}: {n}</title></rect>",
                f64::from(HEIGHT - 20) - h,
                (slot - 2.0).max(1.0)
            );
        }
        if day == 1 || day % 5 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" fill=\"{AXIS}\">{day}</text>",
                HEIGHT - 5
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Calls per tool as horizontal bars, most used first.
pub fn per_tool(tools: &[(String, u32)], title: &str, desc: &str) -> String {
    let max = tools.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let row = 22u32;
    let height = (row * u32::try_from(tools.len()).unwrap_or(0)).max(row) + 8;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-labelledby=\"chart-tool-title chart-tool-desc\" class=\"chart\">\
<title id=\"chart-tool-title\">{}</title><desc id=\"chart-tool-desc\">{}</desc>",
        escape(title),
        escape(desc)
    );
    for (i, (tool, n)) in tools.iter().enumerate() {
        let y = 4 + row * u32::try_from(i).unwrap_or(0);
        let w = 300.0 * f64::from(*n) / f64::from(max);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\" fill=\"{AXIS}\">{}</text>\
<rect x=\"250\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" fill=\"{BAR}\"/>\
<text x=\"{:.1}\" y=\"{}\" font-size=\"12\" fill=\"{AXIS}\">{n}</text>",
            y + 13,
            escape(&tool.chars().take(40).collect::<String>()),
            256.0 + w,
            y + 13
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_follow_the_counts_and_hostile_names_are_escaped() {
        let svg = per_day(&[(3, 4), (10, 2)], 30, "Calls <per> day", "d");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("<title>3: 4</title>"));
        assert!(svg.contains("Calls &lt;per&gt; day"));
        assert!(!svg.contains("style="));
        let tools = per_tool(
            &[
                ("<script>alert(1)</script>".into(), 5),
                ("get_profit_loss".into(), 1),
            ],
            "t",
            "d",
        );
        assert!(!tools.contains("<script>"));
        assert!(tools.contains("&lt;script&gt;"));
        assert_eq!(tools.matches("<rect").count(), 2);
        // An empty month still draws its axis.
        assert!(per_day(&[], 31, "t", "d").contains("<line"));
    }
}
