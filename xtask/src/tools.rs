//! `cargo xtask setup`: installs every tool the build needs, pinned, into
//! project-local ignored folders, and reuses what is already there.
//!
//! | tool | pinned by | lives in |
//! |---|---|---|
//! | wasm32 target | rustup | the rustup toolchain |
//! | wasm-bindgen-cli | the `wasm-bindgen` version in `Cargo.lock` | `.tools/cargo/bin` |
//! | worker-build | the `worker` version in `Cargo.lock` | `.tools/cargo/bin` |
//! | Node 22, wrangler, esbuild, binaryen (wasm-opt) | `wrangler/package-lock.json` | `wrangler/node_modules` |
//! | Python MCP SDK (end-to-end client) | `tests/sdk/requirements.lock` | `.tools/py` |
//! | playwright-core, axe-core (browser tests) | `wrangler/package-lock.json` | `wrangler/node_modules` |
//! | Chromium and fonts (browser tests) | Debian's packages | `/usr/bin/chromium` (apt-get, as root) |
//!
//! worker-build would download wasm-bindgen, wasm-opt and esbuild from the
//! internet; `WASM_BINDGEN_BIN`, `WASM_OPT_BIN` and `ESBUILD_BIN` point it
//! at these instead, so nothing is fetched outside the package registries.
//! For the same reason the browser tests drive Debian's `chromium` package
//! rather than a browser that playwright would download from its own CDN.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::{project_root, run_cmd};

/// Paths of the installed tools, and the environment that uses them.
#[derive(Debug, Clone)]
pub struct Tools {
    pub root: PathBuf,
    pub wasm_bindgen: PathBuf,
    pub worker_build: PathBuf,
    pub node_dir: PathBuf,
    pub node_modules: PathBuf,
    pub wasm_opt: PathBuf,
    pub esbuild: PathBuf,
    /// Python with the official MCP SDK, for end-to-end tests.
    pub python: PathBuf,
}

impl Tools {
    fn at(root: &Path) -> Self {
        let nm = root.join("wrangler/node_modules");
        Tools {
            root: root.to_path_buf(),
            wasm_bindgen: root.join(".tools/cargo/bin/wasm-bindgen"),
            worker_build: root.join(".tools/cargo/bin/worker-build"),
            node_dir: nm.join("node/bin"),
            wasm_opt: nm.join(".bin/wasm-opt"),
            esbuild: nm.join("@esbuild/linux-x64/bin/esbuild"),
            node_modules: nm,
            python: root.join(".tools/py/bin/python"),
        }
    }

    /// `PATH` with Node 22 and the npm binaries first.
    pub fn path_var(&self) -> String {
        let old = std::env::var("PATH").unwrap_or_default();
        format!(
            "{}:{}:{old}",
            self.node_dir.display(),
            self.node_modules.join(".bin").display()
        )
    }

    /// Applies the tool environment to a command.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("PATH", self.path_var())
            .env("WASM_BINDGEN_BIN", &self.wasm_bindgen)
            .env("WASM_OPT_BIN", &self.wasm_opt)
            .env("ESBUILD_BIN", &self.esbuild)
            // Offline: skip the Request.cf download and telemetry.
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true");
    }

    /// A `wrangler` command with the tool environment, run from `wrangler/`.
    pub fn wrangler(&self) -> Command {
        let mut cmd = Command::new(self.node_modules.join(".bin/wrangler"));
        self.apply(&mut cmd);
        cmd.current_dir(self.root.join("wrangler"));
        cmd
    }

    pub fn node(&self) -> Command {
        let mut cmd = Command::new(self.node_dir.join("node"));
        self.apply(&mut cmd);
        cmd
    }
}

/// A package's version as locked in `Cargo.lock`.
pub fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .with_context(|| format!("{package} is not in Cargo.lock"))?
        + needle.len();
    let end = lock[start..].find('"').context("malformed Cargo.lock")?;
    Ok(lock[start..start + end].to_owned())
}

fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// How many steps `setup` prints.
const STEPS: usize = 7;

/// Where Debian's `chromium` package puts the browser the browser tests drive.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The Debian packages of the browser tests, and one file of each whose
/// presence says the package is installed (a file check is instant; asking
/// dpkg is not needed on the fast path).
const BROWSER_PACKAGES: [(&str, &str); 2] = [
    ("chromium", CHROMIUM),
    // Without a font package, headless Chromium renders text as boxes in
    // screenshots on a minimal Debian.
    (
        "fonts-dejavu-core",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    ),
];

fn progress(n: usize, what: &str) -> Instant {
    println!("setup [{n}/{STEPS}] {what}");
    Instant::now()
}

fn done(t: Instant, what: &str) {
    println!("        {what} ({:.1?})", t.elapsed());
}

/// Installs a crate's binary at an exact version into `.tools/cargo`.
/// `--locked` first (the crate's own lockfile); if the registry no longer
/// serves one of those exact versions (yanked), resolve afresh.
fn cargo_install(root: &Path, krate: &str, version: &str) -> Result<()> {
    let base = |locked: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args(["install", krate, "--version", &format!("={version}")])
            .arg("--root")
            .arg(root.join(".tools/cargo"))
            .arg("--target-dir")
            .arg(root.join(".tools/cargo-build"))
            .arg("--force");
        if locked {
            cmd.arg("--locked");
        }
        cmd
    };
    if run_cmd(&mut base(true)).is_ok() {
        return Ok(());
    }
    println!("        --locked failed (a pinned dependency is unavailable); resolving afresh");
    run_cmd(&mut base(false))
}

pub fn setup() -> Result<Tools> {
    let started = Instant::now();
    let root = project_root();
    let tools = Tools::at(&root);

    let t = progress(1, "wasm32-unknown-unknown target");
    let installed = output_of(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is required (it installs the wasm32 target)")?;
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        done(t, "present");
    } else {
        run_cmd(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
        done(t, "installed");
    }

    let t = progress(2, "wasm-bindgen-cli (version from Cargo.lock)");
    let want = locked_version(&root, "wasm-bindgen")?;
    let have = output_of(Command::new(&tools.wasm_bindgen).arg("--version"));
    if have.as_deref() == Some(&format!("wasm-bindgen {want}")) {
        done(t, &format!("{want} present"));
    } else {
        cargo_install(&root, "wasm-bindgen-cli", &want)?;
        done(t, &format!("{want} installed"));
    }

    let t = progress(3, "worker-build (version of `worker` in Cargo.lock)");
    let want = locked_version(&root, "worker")?;
    let have = output_of(Command::new(&tools.worker_build).arg("--version"));
    if have.as_deref().is_some_and(|v| v.ends_with(&want)) {
        done(t, &format!("{want} present"));
    } else {
        cargo_install(&root, "worker-build", &want)?;
        done(t, &format!("{want} installed"));
    }

    let t = progress(
        4,
        "npm tooling: Node 22, wrangler, esbuild, binaryen, playwright-core, axe-core",
    );
    let lock = std::fs::read(root.join("wrangler/package-lock.json"))
        .context("wrangler/package-lock.json is missing")?;
    let stamp_path = root.join(".tools/npm-lock.sha256");
    let want = hex::encode(Sha256::digest(&lock));
    let have = std::fs::read_to_string(&stamp_path).unwrap_or_default();
    if have.trim() == want && tools.node_modules.join(".bin/wrangler").exists() {
        done(t, "up to date with package-lock.json");
    } else {
        let npm = output_of(Command::new("npm").arg("--version"))
            .context("npm is required to install the pinned npm tooling")?;
        // `npm install` with the committed lock, not `npm ci`: npm 11's
        // `ci` rejects a lock without entries for other platforms' optional
        // binaries (workerd-darwin-*), which npm itself leaves out.
        // `--no-save` keeps package.json and the lock untouched.
        println!("        npm install from package-lock.json (npm {npm})");
        run_cmd(
            Command::new("npm")
                .args([
                    "install",
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                ])
                .current_dir(root.join("wrangler")),
        )?;
        std::fs::create_dir_all(root.join(".tools"))?;
        std::fs::write(&stamp_path, &want)?;
        done(t, "installed");
    }

    let t = progress(5, "verify Node 22, wasm-opt and esbuild");
    let node = output_of(tools.node().arg("--version")).unwrap_or_default();
    if !node.starts_with("v22.") {
        bail!(
            "Node 22 from wrangler/node_modules did not run (got {node:?}); \
             delete wrangler/node_modules and run `cargo xtask setup` again"
        );
    }
    for (name, path) in [("wasm-opt", &tools.wasm_opt), ("esbuild", &tools.esbuild)] {
        if !path.exists() {
            bail!(
                "{name} is missing at {}; run `cargo xtask setup` after deleting wrangler/node_modules",
                path.display()
            );
        }
    }
    done(t, &format!("node {node}"));

    let t = progress(
        6,
        "Python MCP SDK for end-to-end tests (tests/sdk/requirements.lock)",
    );
    let lock = std::fs::read(root.join("tests/sdk/requirements.lock"))
        .context("tests/sdk/requirements.lock is missing")?;
    let stamp_path = root.join(".tools/py-lock.sha256");
    let want = hex::encode(Sha256::digest(&lock));
    let have = std::fs::read_to_string(&stamp_path).unwrap_or_default();
    if have.trim() == want && tools.python.exists() {
        done(t, "up to date with requirements.lock");
    } else {
        run_cmd(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(root.join(".tools/py")),
        )
        .context("python3 with venv is required for the SDK tests")?;
        run_cmd(
            Command::new(&tools.python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(root.join("tests/sdk/requirements.lock")),
        )?;
        std::fs::write(&stamp_path, &want)?;
        done(t, "installed");
    }
    let t = progress(7, "browser for the browser tests (Debian chromium, fonts)");
    match browser_packages() {
        Ok(what) => done(t, &what),
        // Only the browser tests need it: the rest of the set-up stays
        // usable, and the browser group fails later with this same reason.
        Err(e) => println!("        NOT INSTALLED: {e:#}"),
    }
    println!("setup complete in {:.1?}", started.elapsed());
    Ok(tools)
}

/// Installs the browser tests' Debian packages that are missing, with
/// `apt-get` (as root: CI runs as root on a fresh Debian machine). Returns
/// what it did; fails with an instruction when it cannot install.
fn browser_packages() -> Result<String> {
    let uid = || output_of(Command::new("id").arg("-u")).unwrap_or_default();
    install_missing(&BROWSER_PACKAGES, uid)
}

/// Installs those of `packages` (a Debian package and a file it installs)
/// whose file is missing. `uid` is only asked when something is missing, so
/// the fast path runs no command at all.
fn install_missing(packages: &[(&str, &str)], uid: impl FnOnce() -> String) -> Result<String> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok("present".into());
    }
    let instruction = format!(
        "the browser tests need the Debian packages {missing}; install them with \
         `sudo apt-get update && sudo apt-get install -y --no-install-recommends {missing}` \
         and run `cargo xtask setup` again",
        missing = missing.join(" ")
    );
    if uid() != "0" {
        bail!("not running as root, so setup cannot install them: {instruction}");
    }
    if output_of(Command::new("apt-get").arg("--version")).is_none() {
        bail!("apt-get is not available: {instruction}");
    }
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null());
        cmd
    };
    println!("        apt-get install {}", missing.join(" "));
    run_cmd(&mut apt(&["update", "-q"])).context(instruction.clone())?;
    run_cmd(apt(&["install", "-y", "-q", "--no-install-recommends"]).args(&missing))
        .context(instruction.clone())?;
    if !Path::new(CHROMIUM).exists() {
        bail!("apt-get finished but {CHROMIUM} is still missing: {instruction}");
    }
    Ok(format!("installed {}", missing.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_browser_packages_need_no_command() {
        let here = file!();
        let got = install_missing(&[("xtask-source", "src/tools.rs")], || {
            panic!("uid asked although nothing is missing ({here})")
        });
        assert_eq!(got.unwrap(), "present");
    }

    #[test]
    fn without_root_a_missing_package_fails_with_the_command_to_run() {
        let err = install_missing(
            &[
                ("present", "src/tools.rs"),
                ("no-such-package", "/no/such/file/anywhere"),
            ],
            || "1000".into(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not running as root"), "{err}");
        assert!(
            err.contains("sudo apt-get install -y --no-install-recommends no-such-package"),
            "{err}"
        );
        assert!(!err.contains("present "), "{err}");
    }
}
