//! Bundles the MCP Apps views (`views/*.ts`, plain TypeScript, and the
//! shared `views/lib/`) with the pinned esbuild into single self-contained
//! HTML documents in `OUT_DIR/views/`, which `tools::views` embeds: the
//! views are built from their sources on every build, never pasted in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// Every view, by file name (without `.ts`), with its document title.
const VIEWS: &[(&str, &str)] = &[
    ("profit-loss", "Winst- en verliesrekening"),
    ("balance-sheet", "Balans"),
    ("aging", "Ouderdomsanalyse"),
    ("cashflow", "Liquiditeitsprognose"),
    ("consolidated", "Geconsolideerd rapport"),
    ("period-close", "Periode-afsluiting"),
    ("snapshot", "Financieel overzicht"),
];

/// The view's own policy, besides the host's: no origin at all, only its
/// own inline script and style (named by their SHA-256, so nothing else
/// inline can run), images only as data.
fn csp(script: &str, style: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let hash = |text: &str| {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    };
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
         img-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'",
        hash(script),
        hash(style)
    )
}

type Failure = Box<dyn std::error::Error>;

fn esbuild(bin: &Path, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| format!("could not run esbuild at {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "esbuild failed on {args:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn main() -> Result<(), Failure> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let src = manifest.join("views");
    println!("cargo:rerun-if-changed=views");
    println!("cargo:rerun-if-env-changed=ESBUILD_BIN");
    // `cargo xtask` points ESBUILD_BIN at the pinned binary; a plain cargo
    // build finds the same one in the npm tooling `cargo xtask setup`
    // installs.
    let bin = env::var_os("ESBUILD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../wrangler/node_modules/esbuild/bin/esbuild"));
    // Until it exists this makes cargo run the script on every build, so
    // the views are bundled as soon as `cargo xtask setup` installed it.
    println!("cargo:rerun-if-changed={}", bin.display());
    let out = PathBuf::from(env::var("OUT_DIR")?).join("views");
    fs::create_dir_all(&out)?;
    if !bin.exists() {
        // `cargo xtask` itself links this crate and is compiled before its
        // `setup` can install the npm tooling: then the views are left
        // empty, and an empty view is never offered (`tools::views::all`).
        // The native tests fail on it (they require every view), and every
        // build after `cargo xtask setup` bundles them.
        println!(
            "cargo:warning=esbuild is missing at {}: the MCP Apps views are not built; run `cargo xtask setup`",
            bin.display()
        );
        for (name, _) in VIEWS {
            fs::write(out.join(format!("{name}.html")), "")?;
        }
        return Ok(());
    }
    let css_path = src.join("lib/style.css");
    let css = esbuild(
        &bin,
        &[
            &css_path.to_string_lossy(),
            "--minify",
            "--log-level=warning",
        ],
    )?
    // Nothing in a style may end the element early.
    .replace("</style", "<\\/style");
    for (name, title) in VIEWS {
        let entry = src.join(format!("{name}.ts"));
        let js = esbuild(
            &bin,
            &[
                &entry.to_string_lossy(),
                "--bundle",
                "--minify",
                "--format=iife",
                "--target=es2020",
                "--charset=utf8",
                "--legal-comments=none",
                "--log-level=warning",
            ],
        )?
        // `<\/script` means the same inside any JavaScript string, regular
        // expression or comment, and cannot end the element.
        .replace("</script", "<\\/script");
        let csp = csp(&js, &css);
        let html = format!(
            "<!doctype html><html lang=\"nl\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\
             <title>{title}</title><style>{css}</style></head>\
             <body><main id=\"app\" aria-busy=\"true\"></main><script>{js}</script></body></html>"
        );
        fs::write(out.join(format!("{name}.html")), html)?;
    }
    Ok(())
}
