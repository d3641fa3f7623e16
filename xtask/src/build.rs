//! `cargo xtask build`: the three Workers through worker-build, then a
//! table of each bundle's size against the platform's limits and our goal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::run_cmd;
use crate::tools::Tools;

/// A Worker of the workspace.
#[derive(Debug, Clone, Copy)]
pub struct WorkerCrate {
    pub name: &'static str,
}

pub const WORKERS: [WorkerCrate; 3] = [
    WorkerCrate { name: "mcp-server" },
    WorkerCrate {
        name: "auth-portal",
    },
    WorkerCrate { name: "token-cron" },
];

impl WorkerCrate {
    pub fn dir(self, root: &Path) -> PathBuf {
        root.join("workers").join(self.name)
    }
    pub fn config(self, root: &Path) -> PathBuf {
        root.join("wrangler").join(self.name).join("wrangler.jsonc")
    }
}

/// Platform upload limit since 2026: 64 MiB uncompressed on every plan
/// (the 3 MB / 10 MB compressed caps were removed).
pub const PLATFORM_UPLOAD_LIMIT: u64 = 64 * 1024 * 1024;
/// Platform start-up budget (parse + instantiate) per isolate.
pub const STARTUP_BUDGET_MS: f64 = 1000.0;
/// Our own goal, for cold starts: under 1 MB gzip per Worker.
pub const GOAL_GZIP: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Release,
    Dev,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BundleSize {
    pub worker: &'static str,
    pub wasm_raw: u64,
    pub js_raw: u64,
    pub total_raw: u64,
    pub total_gzip: u64,
    /// Eager baseline compile in V8 (Node 22): a proxy for the platform's
    /// start-up cost.
    pub compile_ms: f64,
    /// Full optimising compile: an upper bound.
    pub optimized_compile_ms: f64,
    pub build_secs: f64,
}

fn gzip_len(bytes: &[u8]) -> Result<u64> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len() as u64)
}

/// Milliseconds for V8 (Node 22) to compile the module once, in a fresh
/// process (V8 caches modules within a process). `flags` choose the tier:
/// eager baseline compilation is what an isolate start pays; the optimising
/// tier is the upper bound.
fn compile_ms(tools: &Tools, wasm: &Path, flags: &[&str]) -> Result<f64> {
    let script = "const b=require('fs').readFileSync(process.argv[1]);\
        const t=performance.now();new WebAssembly.Module(b);\
        console.log((performance.now()-t).toFixed(1));";
    let out = tools
        .node()
        .args(flags)
        .args(["-e", script])
        .arg(wasm)
        .output()
        .context("running node to time the wasm compile")?;
    if !out.status.success() {
        bail!("node could not compile {}", wasm.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

pub fn build_one(tools: &Tools, worker: WorkerCrate, profile: Profile) -> Result<BundleSize> {
    let started = Instant::now();
    let dir = worker.dir(&tools.root);
    let mut cmd = Command::new(&tools.worker_build);
    tools.apply(&mut cmd);
    cmd.current_dir(&dir).arg(match profile {
        Profile::Release => "--release",
        Profile::Dev => "--dev",
    });
    run_cmd(&mut cmd).with_context(|| format!("building {}", worker.name))?;
    let wasm_path = dir.join("build/index_bg.wasm");
    let wasm =
        std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    let js = std::fs::read(dir.join("build/index.js"))?;
    let mut both = wasm.clone();
    both.extend_from_slice(&js);
    Ok(BundleSize {
        worker: worker.name,
        wasm_raw: wasm.len() as u64,
        js_raw: js.len() as u64,
        total_raw: both.len() as u64,
        total_gzip: gzip_len(&wasm)? + gzip_len(&js)?,
        compile_ms: compile_ms(tools, &wasm_path, &["--no-wasm-lazy-compilation"])?,
        optimized_compile_ms: compile_ms(
            tools,
            &wasm_path,
            &["--no-wasm-lazy-compilation", "--no-liftoff"],
        )?,
        build_secs: started.elapsed().as_secs_f64(),
    })
}

pub fn build_all(tools: &Tools, profile: Profile) -> Result<Vec<BundleSize>> {
    WORKERS
        .iter()
        .map(|w| {
            println!("building {} ({profile:?})", w.name);
            build_one(tools, *w, profile)
        })
        .collect()
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

pub fn print_report(report: &[BundleSize]) {
    println!();
    println!(
        "| Worker      | wasm       | js        | total raw  | total gzip | gzip vs goal 1 MB | raw vs limit 64 MiB | compile vs budget 1 s | optimised compile |"
    );
    println!(
        "|-------------|------------|-----------|------------|------------|-------------------|---------------------|-----------------------|-------------------|"
    );
    for b in report {
        println!(
            "| {:<11} | {:>10} | {:>9} | {:>10} | {:>10} | {:>16.1}% | {:>18.2}% | {:>18.1} ms | {:>14.1} ms |",
            b.worker,
            kib(b.wasm_raw),
            kib(b.js_raw),
            kib(b.total_raw),
            kib(b.total_gzip),
            b.total_gzip as f64 * 100.0 / GOAL_GZIP as f64,
            b.total_raw as f64 * 100.0 / PLATFORM_UPLOAD_LIMIT as f64,
            b.compile_ms,
            b.optimized_compile_ms,
        );
    }
    println!();
    print_views();
}

/// The MCP Apps views the mcp-server embeds (bundled from
/// `crates/mcp/views/` by that crate's build script): what each costs.
fn print_views() {
    let views = boekhouding_mcp::tools::views::all();
    if views.is_empty() {
        // This binary was compiled before `setup` installed esbuild; the
        // Workers just built have their views.
        println!("(MCP Apps view sizes: shown from the next run on)\n");
        return;
    }
    println!("| MCP Apps view (in mcp-server) | raw        | gzip       |");
    println!("|-------------------------------|------------|------------|");
    let (mut raw, mut gzip) = (0, 0);
    for v in &views {
        let g = gzip_len(v.html.as_bytes()).unwrap_or(0);
        raw += v.html.len() as u64;
        gzip += g;
        println!(
            "| {:<29} | {:>10} | {:>10} |",
            v.uri.trim_start_matches("ui://praat-met-je-boekhouding/"),
            kib(v.html.len() as u64),
            kib(g)
        );
    }
    println!(
        "| {:<29} | {:>10} | {:>10} |",
        format!("all {} views", views.len()),
        kib(raw),
        kib(gzip)
    );
    println!();
}

/// Fails over the platform's limits; says so plainly over our own goal.
pub fn enforce_limits(report: &[BundleSize]) -> Result<()> {
    let mut over = Vec::new();
    for b in report {
        if b.total_raw > PLATFORM_UPLOAD_LIMIT {
            over.push(format!(
                "{} is {} uncompressed, over the platform's 64 MiB upload limit",
                b.worker,
                kib(b.total_raw)
            ));
        }
        if b.total_gzip > GOAL_GZIP {
            println!(
                "WARNING: {} is {} gzip, over our 1 MB goal for cold starts",
                b.worker,
                kib(b.total_gzip)
            );
        }
        if b.compile_ms > STARTUP_BUDGET_MS {
            println!(
                "WARNING: {} takes {:.0} ms to compile here, over the platform's 1 s start-up budget",
                b.worker, b.compile_ms
            );
        }
    }
    if over.is_empty() {
        Ok(())
    } else {
        bail!("{}", over.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(raw: u64, gzip: u64) -> BundleSize {
        BundleSize {
            worker: "w",
            wasm_raw: raw,
            js_raw: 0,
            total_raw: raw,
            total_gzip: gzip,
            compile_ms: 1.0,
            optimized_compile_ms: 1.0,
            build_secs: 0.0,
        }
    }

    #[test]
    fn over_the_platform_limit_fails_over_the_goal_only_warns() {
        assert!(enforce_limits(&[size(PLATFORM_UPLOAD_LIMIT + 1, 10)]).is_err());
        assert!(enforce_limits(&[size(PLATFORM_UPLOAD_LIMIT, GOAL_GZIP + 1)]).is_ok());
    }

    #[test]
    fn gzip_shrinks_repetitive_input() {
        let n = gzip_len(&vec![b'a'; 100_000]).unwrap();
        assert!(n < 1_000, "{n}");
    }
}
