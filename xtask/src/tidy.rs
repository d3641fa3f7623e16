//! Tidy checks, written as ordinary tests: architecture invariants that a
//! review would otherwise have to remember.

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::process::Command;

    use crate::project_root;

    /// Crates that must never be in core's dependency tree.
    const FORBIDDEN_IN_CORE: &[&str] = &[
        "worker",
        "wasm-bindgen",
        "js-sys",
        "web-sys",
        "getrandom",
        "tokio",
        "async-std",
        "reqwest",
        "hyper",
        "ureq",
        "rusqlite",
    ];

    /// Packages in `package`'s normal dependency tree, for every target,
    /// with features resolved for that package alone (`cargo metadata`
    /// would unify features across the whole workspace, where `worker`
    /// switches on chrono's wasm-bindgen support).
    fn normal_closure(package: &str) -> BTreeSet<String> {
        let out = Command::new("cargo")
            .args([
                "tree", "-p", package, "-e", "normal", "--prefix", "none", "--target", "all",
            ])
            .current_dir(project_root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn core_does_not_depend_on_the_platform_io_or_a_runtime() {
        let deps = normal_closure("boekhouding-core");
        assert!(deps.contains("aes-gcm"), "the tree was read: {deps:?}");
        let bad: Vec<&&str> = FORBIDDEN_IN_CORE
            .iter()
            .filter(|f| deps.contains(**f))
            .collect();
        assert!(bad.is_empty(), "boekhouding-core depends on {bad:?}");
        // The check itself works: a Worker does reach `worker`.
        assert!(normal_closure("mcp-server").contains("worker"));
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn core_reads_no_clock() {
        let mut files = Vec::new();
        rust_files(&project_root().join("crates/core/src"), &mut files);
        assert!(files.len() > 5);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for needle in [
                "SystemTime",
                "Instant::now",
                "Utc::now",
                "Local::now",
                "chrono::Local",
            ] {
                assert!(
                    !text.contains(needle),
                    "{} reads a clock ({needle}); take `now` as an argument",
                    file.display()
                );
            }
        }
    }

    #[test]
    fn every_rust_file_starts_with_a_module_doc_line() {
        let root = project_root();
        let mut files = Vec::new();
        for dir in ["crates", "workers", "xtask/src"] {
            rust_files(&root.join(dir), &mut files);
        }
        let missing: Vec<String> = files
            .iter()
            .filter(|f| {
                !f.components()
                    .any(|c| c.as_os_str() == "build" || c.as_os_str() == "target")
            })
            .filter(|f| {
                !std::fs::read_to_string(f)
                    .unwrap()
                    .trim_start()
                    .starts_with("//!")
            })
            .map(|f| f.display().to_string())
            .collect();
        assert!(missing.is_empty(), "files without a //! line: {missing:?}");
    }

    #[test]
    fn wasm_bindgen_is_pinned_exactly_so_the_installed_cli_matches() {
        let manifest = std::fs::read_to_string(project_root().join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("wasm-bindgen = \"=0.2."),
            "pin wasm-bindgen with `=`"
        );
        let locked = crate::tools::locked_version(&project_root(), "wasm-bindgen").unwrap();
        assert!(manifest.contains(&format!("wasm-bindgen = \"={locked}\"")));
    }

    #[test]
    fn ci_runs_the_readme_test_command() {
        let root = project_root();
        let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        assert!(ci.contains("cargo xtask test"));
        assert!(readme.contains("cargo xtask test") && readme.contains("cargo xtask dev"));
    }
}
