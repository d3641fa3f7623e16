//! The Workers' `wrangler.jsonc` files read as data (JSONC: comments
//! allowed), for the deploy's preflight and the tidy test that compares
//! each deployed environment with the settings catalogue
//! (`boekhouding_core::settings`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use boekhouding_core::settings::{self, BindingKind, Gap, Worker};
use serde_json::Value;

/// Values that mark a field the operator still has to fill in.
pub const PLACEHOLDER: &str = "REPLACE_WITH_";

/// One Worker's parsed configuration file.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub worker: Worker,
    pub path: PathBuf,
    pub root: Value,
}

/// What one deployed environment of one Worker declares.
#[derive(Debug, Clone)]
pub struct Environment<'a> {
    pub config: &'a WorkerConfig,
    pub name: String,
    pub block: &'a Value,
}

impl WorkerConfig {
    /// `dir/<worker>/wrangler.jsonc`.
    pub fn load(dir: &Path, worker: Worker) -> Result<WorkerConfig> {
        let path = dir.join(worker.dir()).join("wrangler.jsonc");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let root = jsonc_parser::parse_to_serde_value::<Value>(&text, &Default::default())
            .with_context(|| format!("{} is not valid JSONC", path.display()))?;
        Ok(WorkerConfig { worker, path, root })
    }

    /// The Worker's script name.
    pub fn name(&self) -> &str {
        self.root["name"].as_str().unwrap_or_default()
    }

    /// The names of the deployed environments (`env.<name>`).
    pub fn environment_names(&self) -> Vec<String> {
        self.root["env"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn environment(&self, name: &str) -> Option<Environment<'_>> {
        let block = self.root["env"].get(name)?;
        Some(Environment {
            config: self,
            name: name.to_owned(),
            block,
        })
    }

    /// The script name wrangler gives the environment (`<name>-<env>`).
    pub fn script_name(&self, env: &str) -> String {
        format!("{}-{env}", self.name())
    }
}

impl Environment<'_> {
    pub fn var_names(&self) -> Vec<&str> {
        self.block["vars"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.block["vars"][name].as_str()
    }

    /// Every binding declared, with its kind.
    pub fn bindings(&self) -> Vec<(BindingKind, &str)> {
        let b = self.block;
        [
            (BindingKind::D1, &b["d1_databases"], "binding"),
            (BindingKind::Kv, &b["kv_namespaces"], "binding"),
            (BindingKind::RateLimit, &b["ratelimits"], "name"),
            (
                BindingKind::QueueProducer,
                &b["queues"]["producers"],
                "binding",
            ),
            (
                BindingKind::AnalyticsEngine,
                &b["analytics_engine_datasets"],
                "binding",
            ),
        ]
        .into_iter()
        .flat_map(|(kind, list, key)| {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(move |item| Some((kind, item[key].as_str()?)))
        })
        .collect()
    }

    /// The custom domains the environment is served on.
    pub fn hosts(&self) -> Vec<&str> {
        self.block["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["pattern"].as_str())
            .collect()
    }

    /// The origin `/health` is checked on (the first custom domain).
    pub fn origin(&self) -> Option<String> {
        self.hosts()
            .first()
            .filter(|h| !h.contains(PLACEHOLDER))
            .map(|h| format!("https://{}", h.trim_end_matches("/*")))
    }

    /// The D1 database's id and name (`DB`).
    pub fn database(&self) -> Option<(&str, &str)> {
        let db = self.block["d1_databases"]
            .as_array()?
            .iter()
            .find(|d| d["binding"] == "DB")?;
        Some((db["database_id"].as_str()?, db["database_name"].as_str()?))
    }

    /// The D1 migrations folder, resolved against the configuration file.
    pub fn migrations_dir(&self) -> Option<PathBuf> {
        let db = self.block["d1_databases"]
            .as_array()?
            .iter()
            .find(|d| d["binding"] == "DB")?;
        let rel = db["migrations_dir"].as_str()?;
        Some(self.config.path.parent()?.join(rel))
    }

    /// Every value still holding a placeholder, as `path = value`.
    pub fn placeholders(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(
            self.block,
            &format!("env.{}", self.name),
            &mut |path, text| {
                if text.contains(PLACEHOLDER) {
                    out.push(format!("{path} = {text:?}"));
                }
            },
        );
        out
    }

    /// What the settings catalogue says this environment lacks or wrongly
    /// carries.
    pub fn gaps(&self) -> Vec<Gap> {
        let mut gaps =
            settings::check_environment(self.config.worker, &self.var_names(), &self.bindings());
        if self.hosts().is_empty() {
            gaps.push(Gap::Unknown(
                "routes: no custom domain, so the deploy has no /health to check".into(),
            ));
        }
        gaps
    }
}

/// Calls `f(path, text)` for every string in `v`.
fn walk(v: &Value, path: &str, f: &mut impl FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), f);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                walk(item, &format!("{path}.{k}"), f);
            }
        }
        _ => {}
    }
}

/// The three Workers' configurations under `dir` (`wrangler/` of the
/// repository, or a copy with the same layout).
pub fn load_all(dir: &Path) -> Result<Vec<WorkerConfig>> {
    Worker::ALL
        .into_iter()
        .map(|w| WorkerConfig::load(dir, w))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::project_root;

    fn configs() -> Vec<WorkerConfig> {
        load_all(&project_root().join("wrangler")).unwrap()
    }

    /// Part of the tidy checks: every deployed environment of every Worker
    /// carries each variable and binding the code needs, and nothing the
    /// code does not read or reads only locally.
    #[test]
    fn every_deployed_environment_matches_the_settings_catalogue() {
        for c in configs() {
            let names = c.environment_names();
            assert_eq!(names, ["production", "staging"], "{}", c.path.display());
            for env in &names {
                let e = c.environment(env).unwrap();
                let gaps: Vec<String> = e.gaps().iter().map(ToString::to_string).collect();
                assert!(gaps.is_empty(), "{} env.{env}: {gaps:#?}", c.path.display());
                assert_eq!(e.var("ENVIRONMENT"), Some(env.as_str()));
            }
        }
    }

    #[test]
    fn rate_limit_namespaces_and_datasets_are_never_shared_between_environments() {
        let mut namespaces: BTreeMap<String, String> = BTreeMap::new();
        let mut datasets: BTreeMap<String, String> = BTreeMap::new();
        for c in configs() {
            let mut blocks = vec![("local".to_owned(), &c.root)];
            for env in c.environment_names() {
                blocks.push((env.clone(), &c.root["env"][&env]));
            }
            for (env, block) in blocks {
                let here = format!("{} {env}", c.worker);
                for r in block["ratelimits"].as_array().into_iter().flatten() {
                    let id = r["namespace_id"].as_str().unwrap().to_owned();
                    if let Some(other) = namespaces.insert(id.clone(), here.clone()) {
                        panic!("rate-limit namespace {id} is used by {other} and {here}");
                    }
                }
                for d in block["analytics_engine_datasets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let name = d["dataset"].as_str().unwrap().to_owned();
                    if let Some(other) = datasets.insert(name.clone(), here.clone()) {
                        panic!("dataset {name} is used by {other} and {here}");
                    }
                }
            }
        }
        assert!(
            namespaces.len() >= 6,
            "the namespaces were read: {namespaces:?}"
        );
    }

    /// Every upper-case name the Workers look up is in the catalogue, so a
    /// new variable cannot be read without the tidy test above asking for
    /// it in staging and production.
    #[test]
    fn every_name_the_workers_look_up_is_in_the_settings_catalogue() {
        // Upper-case literals in these files that are not settings.
        const NOT_SETTINGS: &[&str] = &["SQLITE_BUSY"];
        let root = project_root();
        let mut files = vec![root.join("crates/core/src/cron.rs")];
        for dir in [
            "workers/mcp-server/src",
            "workers/auth-portal/src",
            "workers/token-cron/src",
            "crates/cf-adapters/src",
        ] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let mut seen = 0;
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for lit in text.split('"').skip(1).step_by(2) {
                let name_like = lit.len() > 2
                    && lit.starts_with(|c: char| c.is_ascii_uppercase())
                    && lit
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && lit.contains(|c: char| c == '_' || c.is_ascii_uppercase());
                if !name_like
                    || NOT_SETTINGS.contains(&lit)
                    || ["GET", "POST", "PUT", "DELETE", "HEAD"].contains(&lit)
                {
                    continue;
                }
                seen += 1;
                assert!(
                    settings::get(lit).is_some(),
                    "{} reads {lit}, which crates/core/src/settings.rs does not list",
                    f.display()
                );
            }
        }
        assert!(seen > 20, "the literals were found ({seen})");
    }

    #[test]
    fn the_readme_configuration_table_names_every_setting() {
        let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
        let table = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap();
        let missing: Vec<&str> = settings::SETTINGS
            .iter()
            .map(|s| s.name)
            .filter(|n| !table.contains(&format!("`{n}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "README's configuration table lacks {missing:?}"
        );
    }

    #[test]
    fn placeholders_are_found_by_path_and_a_filled_block_has_none() {
        let c = WorkerConfig {
            worker: Worker::TokenCron,
            path: PathBuf::from("x"),
            root: serde_json::json!({"name": "w", "env": {"staging": {
                "vars": {"A": "ok", "B": "REPLACE_WITH_B"},
                "d1_databases": [{"binding": "DB", "database_id": "REPLACE_WITH_ID"}]
            }}}),
        };
        let e = c.environment("staging").unwrap();
        assert_eq!(
            e.placeholders(),
            vec![
                "env.staging.d1_databases[0].database_id = \"REPLACE_WITH_ID\"",
                "env.staging.vars.B = \"REPLACE_WITH_B\"",
            ]
        );
        let mut filled = c.clone();
        filled.root["env"]["staging"]["vars"]["B"] = "b".into();
        filled.root["env"]["staging"]["d1_databases"][0]["database_id"] = "1234".into();
        assert!(
            filled
                .environment("staging")
                .unwrap()
                .placeholders()
                .is_empty()
        );
    }
}
