//! Compiles the names of the repository's migration files into core
//! (`health::EXPECTED_MIGRATIONS`), so a deployed bundle knows which
//! migrations the code it runs was written against and `/health/deep` can
//! compare them with the database's `d1_migrations`.

use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect()
        })
        .unwrap_or_default();
    // The order wrangler applies them in.
    names.sort();
    let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let out =
        Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("migrations.rs");
    let text = format!("&[{}]\n", list.join(", "));
    if let Err(e) = std::fs::write(&out, text) {
        println!("cargo:warning=could not write {}: {e}", out.display());
    }
}
