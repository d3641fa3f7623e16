//! Migration hygiene: `NNNN_name.sql` files numbered 1, 2, 3, … with no
//! duplicate and no gap (the original product shipped two `0006_` and two
//! `0018_` files, and no `0014_`), and applied files never edited (their
//! hashes are pinned in `migrations/checksums.txt`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// What is wrong with a set of migration file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    BadName(String),
    Duplicate(u32, Vec<String>),
    Gap(u32),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::BadName(n) => write!(f, "{n}: expected NNNN_lower_snake_name.sql"),
            Problem::Duplicate(n, files) => {
                write!(f, "number {n:04} used twice: {}", files.join(", "))
            }
            Problem::Gap(n) => write!(f, "number {n:04} is missing"),
        }
    }
}

fn number_of(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".sql")?;
    let (num, rest) = stem.split_once('_')?;
    let ok = num.len() == 4
        && num.bytes().all(|b| b.is_ascii_digit())
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if ok { num.parse().ok() } else { None }
}

/// Checks names (of `.sql` files only) for a linear, gap-free sequence.
pub fn check_names(names: &[String]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut by_number: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for name in names {
        match number_of(name) {
            Some(n) => by_number.entry(n).or_default().push(name.clone()),
            None => problems.push(Problem::BadName(name.clone())),
        }
    }
    for (n, files) in &by_number {
        if files.len() > 1 {
            problems.push(Problem::Duplicate(*n, files.clone()));
        }
    }
    let max = by_number.keys().next_back().copied().unwrap_or(0);
    for n in 1..=max {
        if !by_number.contains_key(&n) {
            problems.push(Problem::Gap(n));
        }
    }
    problems
}

fn sql_files(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    Ok(names)
}

/// `cargo xtask check` for a migrations directory.
pub fn check_dir(dir: &Path) -> Result<()> {
    let problems = check_names(&sql_files(dir)?);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        bail!(
            "migrations in {} are not linear:\n{}",
            dir.display(),
            list.join("\n")
        );
    }
    check_checksums(dir)
}

const CHECKSUMS: &str = "checksums.txt";

fn current_checksums(dir: &Path) -> Result<Vec<(String, String)>> {
    sql_files(dir)?
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n))?;
            Ok((n, hex::encode(Sha256::digest(&bytes))))
        })
        .collect()
}

/// Applied migrations must never change: every file listed in
/// `checksums.txt` must still hash the same, and every file must be listed.
pub fn check_checksums(dir: &Path) -> Result<()> {
    let pinned = std::fs::read_to_string(dir.join(CHECKSUMS)).unwrap_or_default();
    let pinned: BTreeMap<&str, &str> = pinned
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, n)| (n.trim(), h.trim()))
        .collect();
    let mut problems = Vec::new();
    for (name, hash) in current_checksums(dir)? {
        match pinned.get(name.as_str()) {
            Some(p) if *p == hash => {}
            Some(_) => problems.push(format!(
                "{name} was edited after it was pinned; add a new migration instead"
            )),
            None => problems.push(format!(
                "{name} is not pinned; run `cargo xtask db-docs` to pin it and refresh DATABASE.md"
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

/// Pins new migrations (existing pins are kept as they are).
pub fn pin_checksums(dir: &Path) -> Result<()> {
    let old = std::fs::read_to_string(dir.join(CHECKSUMS)).unwrap_or_default();
    let mut lines: BTreeMap<String, String> = old
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, n)| (n.trim().to_owned(), h.trim().to_owned()))
        .collect();
    for (name, hash) in current_checksums(dir)? {
        lines.entry(name).or_insert(hash);
    }
    let text: String = lines.iter().map(|(n, h)| format!("{h}  {n}\n")).collect();
    std::fs::write(dir.join(CHECKSUMS), text)?;
    Ok(())
}

/// The statements of a migration that lose data or break the code that is
/// still running while it is applied: `DROP …`, `ALTER TABLE … DROP` or
/// `… RENAME`, and `DELETE` or `UPDATE` without `WHERE`. The deploy
/// refuses a pending migration holding one unless `--allow-destructive`
/// names it (a reviewed table rebuild, for example). Each statement is
/// returned on one line, as written.
pub fn destructive_statements(sql: &str) -> Vec<String> {
    split_statements(sql)
        .into_iter()
        .filter(|stmt| {
            let upper = format!(" {} ", stmt.to_ascii_uppercase());
            let words: Vec<&str> = upper.split_whitespace().collect();
            match words.as_slice() {
                ["DROP", ..] => true,
                ["ALTER", "TABLE", ..] => words.contains(&"DROP") || words.contains(&"RENAME"),
                ["DELETE", ..] | ["UPDATE", ..] => !words.contains(&"WHERE"),
                _ => false,
            }
        })
        .collect()
}

/// Splits SQL into statements on `;`, leaving out comments (`--` to the
/// end of the line, `/* … */`) and ignoring `;` inside quotes; each
/// statement's whitespace is collapsed to single spaces. Trigger bodies
/// (`BEGIN … END`) are kept whole.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    // The word being read, and how many trigger bodies are open.
    let mut word = String::new();
    let mut in_body = 0usize;
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        let stmt = cur.split_whitespace().collect::<Vec<_>>().join(" ");
        if !stmt.is_empty() {
            out.push(stmt);
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            cur.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            cur.push(c);
            continue;
        }
        // A word ended: trigger bodies open at BEGIN and close at END.
        let upper = cur.to_ascii_uppercase();
        if word.eq_ignore_ascii_case("BEGIN")
            && upper.trim_start().starts_with("CREATE")
            && upper.contains(" TRIGGER ")
        {
            in_body += 1;
        } else if word.eq_ignore_ascii_case("END") && in_body > 0 {
            in_body -= 1;
        }
        word.clear();
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                cur.push(c);
            }
            '-' if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                cur.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                cur.push(' ');
            }
            ';' if in_body == 0 => flush(&mut cur, &mut out),
            _ => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_repository_migrations_are_linear_and_pinned() {
        check_dir(&crate::project_root().join("migrations")).unwrap();
    }

    #[test]
    fn duplicates_and_gaps_are_rejected() {
        let problems = check_names(&names(&[
            "0001_users.sql",
            "0002_a.sql",
            "0002_b.sql",
            "0004_c.sql",
        ]));
        assert_eq!(
            problems,
            vec![
                Problem::Duplicate(2, names(&["0002_a.sql", "0002_b.sql"])),
                Problem::Gap(3)
            ]
        );
    }

    #[test]
    fn badly_named_files_are_rejected() {
        let problems = check_names(&names(&["1_users.sql", "0001_Users.sql", "0001_.sql"]));
        assert_eq!(problems.len(), 3);
    }

    #[test]
    fn a_deliberately_duplicated_number_in_a_copy_of_the_real_migrations_fails_the_check() {
        let src = crate::project_root().join("migrations");
        let tmp = std::env::temp_dir().join(format!("pmjb-migrations-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), tmp.join(entry.file_name())).unwrap();
        }
        check_dir(&tmp).unwrap();
        std::fs::write(tmp.join("0006_duplicate_number.sql"), "SELECT 1;").unwrap();
        let err = check_dir(&tmp).unwrap_err().to_string();
        assert!(err.contains("number 0006 used twice"), "{err}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn editing_a_pinned_migration_is_rejected() {
        let src = crate::project_root().join("migrations");
        let tmp = std::env::temp_dir().join(format!("pmjb-pins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), tmp.join(entry.file_name())).unwrap();
        }
        let first = tmp.join("0001_users_and_sessions.sql");
        let mut sql = std::fs::read_to_string(&first).unwrap();
        sql.push_str("\n-- edited\n");
        std::fs::write(&first, sql).unwrap();
        let err = check_dir(&tmp).unwrap_err().to_string();
        assert!(err.contains("edited after it was pinned"), "{err}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn destructive_statements_are_found_and_safe_ones_pass() {
        let sql = "-- DROP TABLE in a comment is not a statement\n\
            CREATE TABLE a (id TEXT, note TEXT DEFAULT 'x; DROP TABLE b');\n\
            ALTER TABLE a ADD COLUMN c INTEGER;\n\
            CREATE INDEX i ON a (c);\n\
            /* DELETE FROM a; */\n\
            DELETE FROM a WHERE c IS NULL;\n\
            UPDATE a SET c = 1 WHERE c IS NULL;\n\
            drop   table\n  old;\n\
            ALTER TABLE a RENAME COLUMN c TO d;\n\
            ALTER TABLE a DROP COLUMN note;\n\
            DELETE FROM a;\n\
            UPDATE a SET d = 0;\n\
            DROP INDEX i;";
        assert_eq!(
            destructive_statements(sql),
            vec![
                "drop table old",
                "ALTER TABLE a RENAME COLUMN c TO d",
                "ALTER TABLE a DROP COLUMN note",
                "DELETE FROM a",
                "UPDATE a SET d = 0",
                "DROP INDEX i",
            ]
        );
    }

    #[test]
    fn a_trigger_body_is_one_statement() {
        let sql = "SELECT 0;\n  CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; UPDATE c SET x = 1; END; SELECT 1;";
        let stmts = split_statements(sql);
        assert_eq!(stmts.len(), 3, "{stmts:?}");
        assert!(
            destructive_statements(sql).is_empty(),
            "a trigger is not run by the migration"
        );
    }

    #[test]
    fn the_repository_rebuilds_are_the_only_destructive_migrations() {
        let dir = crate::project_root().join("migrations");
        let mut flagged = Vec::new();
        for name in sql_files(&dir).unwrap() {
            let sql = std::fs::read_to_string(dir.join(&name)).unwrap();
            if !destructive_statements(&sql).is_empty() {
                flagged.push(name);
            }
        }
        assert_eq!(
            flagged,
            [
                "0018_connections_per_exact_login.sql",
                "0019_oauth_grants.sql",
                "0020_login_return_to_length.sql"
            ]
        );
    }
}
