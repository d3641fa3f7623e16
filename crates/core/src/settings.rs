//! The catalogue of every setting a Worker reads: plain variables, secrets
//! and bindings, which Workers read each one, and whether a deployed
//! environment must carry it.
//!
//! One list serves three readers: the Workers look names up through it
//! (`cf-adapters::bindings`), `cargo xtask deploy` checks a target
//! environment against it before anything is uploaded, and a tidy test
//! compares it with every environment of every `wrangler.jsonc`, so a
//! variable the code starts reading cannot be forgotten in production.

use std::fmt;

/// The three Workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Worker {
    McpServer,
    AuthPortal,
    TokenCron,
}

impl Worker {
    pub const ALL: [Worker; 3] = [Worker::McpServer, Worker::AuthPortal, Worker::TokenCron];

    /// The crate and configuration folder name (`workers/<name>`,
    /// `wrangler/<name>`).
    pub fn dir(self) -> &'static str {
        match self {
            Worker::McpServer => "mcp-server",
            Worker::AuthPortal => "auth-portal",
            Worker::TokenCron => "token-cron",
        }
    }

    pub fn from_dir(name: &str) -> Option<Worker> {
        Worker::ALL.into_iter().find(|w| w.dir() == name)
    }
}

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir())
    }
}

/// Where a setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plain variable under `vars` in `wrangler.jsonc`.
    Var,
    /// A secret (`wrangler secret put`; locally `.dev.vars` or `--var`).
    Secret,
    /// A binding; the payload is its key in `wrangler.jsonc`.
    Binding(BindingKind),
}

/// The `wrangler.jsonc` array a binding is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    D1,
    Kv,
    RateLimit,
    QueueProducer,
    AnalyticsEngine,
}

impl BindingKind {
    /// The configuration key holding bindings of this kind.
    pub fn config_key(self) -> &'static str {
        match self {
            BindingKind::D1 => "d1_databases",
            BindingKind::Kv => "kv_namespaces",
            BindingKind::RateLimit => "ratelimits",
            BindingKind::QueueProducer => "queues.producers",
            BindingKind::AnalyticsEngine => "analytics_engine_datasets",
        }
    }
}

/// Whether a deployed environment (staging, production) needs the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A deployed environment must set it; without it the Worker misbehaves
    /// (for example runs without Exact while `/health` says ok).
    Required,
    /// It has a sensible default; set it to change that.
    Optional,
    /// For local runs and tests only; a deployed environment must not set it.
    LocalOnly,
    /// `cargo xtask deploy` passes it with every upload.
    SetByDeploy,
}

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    pub workers: &'static [Worker],
    pub need: Need,
    /// What it is for, shown by the deploy's preflight when it is missing.
    pub about: &'static str,
}

impl Setting {
    pub fn read_by(&self, worker: Worker) -> bool {
        self.workers.contains(&worker)
    }
}

use BindingKind as B;
use Kind::{Binding, Secret, Var};
use Need::{LocalOnly, Optional, Required, SetByDeploy};
use Worker::{AuthPortal as P, McpServer as M, TokenCron as C};

const ALL: &[Worker] = &[M, P, C];

/// Every setting of the product. Names are the ones the Workers look up.
/// (A table: one setting per line reads better than rustfmt's layout.)
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    // Bindings.
    Setting { name: "DB", kind: Binding(B::D1), workers: ALL, need: Required, about: "the shared D1 database" },
    Setting { name: "CACHE", kind: Binding(B::Kv), workers: &[M], need: Required, about: "KV for cached Exact reference data" },
    Setting { name: "DEMO_LIMITER", kind: Binding(B::RateLimit), workers: &[M], need: Required, about: "requests per address for the public demo keys (without it the demo answers 503)" },
    Setting { name: "PORTAL_LIMITER", kind: Binding(B::RateLimit), workers: &[P], need: Required, about: "sign-in starts, callbacks and key creation per address" },
    Setting { name: "REFRESH_QUEUE", kind: Binding(B::QueueProducer), workers: &[C], need: Required, about: "fan-out of due refreshes when REFRESH_MODE=queue" },
    Setting { name: "ANALYTICS", kind: Binding(B::AnalyticsEngine), workers: &[M], need: Required, about: "one Analytics Engine data point per tool call" },
    // Variables every Worker reads.
    Setting { name: "ENVIRONMENT", kind: Var, workers: ALL, need: Required, about: "local, staging or production; shown by /health" },
    Setting { name: "GIT_COMMIT", kind: Var, workers: ALL, need: SetByDeploy, about: "the commit the bundle was built from; /health reports it" },
    Setting { name: "AUTH_PORTAL_URL", kind: Var, workers: ALL, need: Required, about: "the portal's public origin (OAuth issuer, links in mails and answers)" },
    // Exact app registration.
    Setting { name: "EXACT_CLIENT_ID", kind: Var, workers: ALL, need: Required, about: "the Exact app's client id" },
    Setting { name: "EXACT_REDIRECT_URI", kind: Var, workers: ALL, need: Required, about: "the Exact app's registered redirect URI (the portal's /callback)" },
    Setting { name: "EXACT_BASE_URL", kind: Var, workers: ALL, need: Optional, about: "another Exact-compatible server instead of the customer's Exact region" },
    Setting { name: "EXACT_CLIENT_SECRET", kind: Secret, workers: ALL, need: Required, about: "the Exact app's client secret" },
    Setting { name: "TOKEN_ENCRYPTION_KEY", kind: Secret, workers: ALL, need: Required, about: "AES-256-GCM keyring sealing Exact tokens (`1:<64 hex>`, same value in every Worker)" },
    Setting { name: "OPERATOR_TOKEN", kind: Secret, workers: ALL, need: Required, about: "bearer token of /health/deep for operators and the deploy's checks" },
    // mcp-server.
    Setting { name: "PUBLIC_URL", kind: Var, workers: &[M], need: Required, about: "the MCP server's public origin (the OAuth resource identifier)" },
    Setting { name: "ALLOWED_ORIGINS", kind: Var, workers: &[M], need: Optional, about: "browser origins allowed to call /mcp, comma-separated" },
    Setting { name: "DEMO_MODE", kind: Var, workers: &[M], need: Optional, about: "`off` refuses the public demo keys" },
    Setting { name: "DEMO_TODAY", kind: Var, workers: &[M], need: LocalOnly, about: "pins the demo's last day so demo answers equal the sandbox's" },
    Setting { name: "D1_DELAY_MS", kind: Var, workers: &[M], need: LocalOnly, about: "adds latency per local D1 round trip, to measure its cost" },
    // auth-portal.
    Setting { name: "MCP_URL", kind: Var, workers: &[P], need: Required, about: "the MCP server's public origin, shown to customers" },
    Setting { name: "HEALTH_URLS", kind: Var, workers: &[P], need: Required, about: "name=URL of each Worker's /health for the status page" },
    Setting { name: "PORTAL_SECRET", kind: Secret, workers: &[P], need: Required, about: "64 hex: the key of CSRF tokens" },
    Setting { name: "OAUTH_ALLOW_PRIVATE_CLIENT_HOSTS", kind: Var, workers: &[P], need: LocalOnly, about: "lets client metadata documents live on private hosts (local only)" },
    Setting { name: "STRIPE_SECRET_KEY", kind: Secret, workers: &[P], need: Required, about: "Stripe API key for Checkout and the Billing Portal" },
    Setting { name: "STRIPE_WEBHOOK_SECRET", kind: Secret, workers: &[P], need: Required, about: "Stripe webhook signing secret(s), comma-separated during rotation" },
    Setting { name: "STRIPE_PRICE_STARTER", kind: Var, workers: &[P], need: Required, about: "the Stripe price of the Starter plan" },
    Setting { name: "STRIPE_PRICE_PRO", kind: Var, workers: &[P], need: Required, about: "the Stripe price of the Pro plan" },
    Setting { name: "STRIPE_API_BASE", kind: Var, workers: &[P], need: LocalOnly, about: "the local Stripe imitation instead of api.stripe.com" },
    // token-cron.
    Setting { name: "REFRESH_MODE", kind: Var, workers: &[C], need: Optional, about: "inline (default) or queue" },
    Setting { name: "OPERATOR_EMAILS", kind: Var, workers: &[C], need: Required, about: "who hears about incidents, comma-separated" },
    Setting { name: "MAIL_FROM", kind: Var, workers: &[C], need: Required, about: "sender of every mail" },
    Setting { name: "MAIL_API_KEY", kind: Secret, workers: &[C], need: Required, about: "the mail provider's API key (without it no mail leaves)" },
    Setting { name: "MAIL_API_URL", kind: Var, workers: &[C], need: LocalOnly, about: "the local mail catcher instead of the mail provider" },
    Setting { name: "HTTP_TIMEOUT_MS", kind: Var, workers: &[C], need: Optional, about: "timeout of each outgoing call" },
    Setting { name: "CRON_MAX_REFRESHES", kind: Var, workers: &[C], need: Optional, about: "refreshes per scheduled run (inline mode)" },
    Setting { name: "CRON_MAX_EMAILS", kind: Var, workers: &[C], need: Optional, about: "mails sent per scheduled run" },
    Setting { name: "CRON_MAX_ENQUEUE", kind: Var, workers: &[C], need: Optional, about: "connections queued per run (queue mode)" },
    Setting { name: "CRON_KEEP_ALIVE_DAYS", kind: Var, workers: &[C], need: Optional, about: "refresh idle connections this long before Exact forgets them" },
    Setting { name: "CRON_IN_USE_MINUTES", kind: Var, workers: &[C], need: Optional, about: "a connection used this recently counts as in use" },
    Setting { name: "CRON_BREAKER_AFTER", kind: Var, workers: &[C], need: Optional, about: "consecutive refresh failures that trip the breaker" },
];

/// The catalogue entry of `name`.
pub fn get(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The settings `worker` reads.
pub fn of(worker: Worker) -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(move |s| s.read_by(worker))
}

/// What a deployed environment of one Worker lacks or wrongly carries,
/// judged from the names it declares. Placeholders are judged elsewhere
/// (they need the values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// A required variable or binding is not declared.
    Missing(&'static Setting),
    /// A local-only variable is declared in a deployed environment.
    LocalOnlyDeclared(&'static Setting),
    /// A variable no Worker reads under that name (a typo or a leftover).
    Unknown(String),
    /// A secret is declared as a plain variable (its value would be in the
    /// configuration file and in the dashboard in clear).
    SecretAsVar(&'static Setting),
    /// `cargo xtask deploy` sets this one; a value in the file would be
    /// overridden or stale.
    DeploySetDeclared(&'static Setting),
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gap::Missing(s) => match s.kind {
                Kind::Binding(b) => write!(
                    f,
                    "binding {} missing from {} ({})",
                    s.name,
                    b.config_key(),
                    s.about
                ),
                _ => write!(f, "variable {} missing ({})", s.name, s.about),
            },
            Gap::LocalOnlyDeclared(s) => write!(
                f,
                "variable {} is for local runs only ({}); remove it",
                s.name, s.about
            ),
            Gap::Unknown(name) => write!(
                f,
                "variable {name} is read by no Worker (a typo or a leftover?)"
            ),
            Gap::SecretAsVar(s) => write!(
                f,
                "{} is a secret: set it with `wrangler secret put`, not under vars",
                s.name
            ),
            Gap::DeploySetDeclared(s) => write!(
                f,
                "variable {} is set by `cargo xtask deploy`; remove it from vars",
                s.name
            ),
        }
    }
}

/// Checks one deployed environment of `worker`: `vars` are the names under
/// `vars`, `bindings` the binding names declared (all kinds, with kind).
pub fn check_environment(
    worker: Worker,
    vars: &[&str],
    bindings: &[(BindingKind, &str)],
) -> Vec<Gap> {
    let mut gaps = Vec::new();
    for s in of(worker) {
        match (s.kind, s.need) {
            (Kind::Var, Need::Required) if !vars.contains(&s.name) => gaps.push(Gap::Missing(s)),
            (Kind::Binding(kind), Need::Required) if !bindings.contains(&(kind, s.name)) => {
                gaps.push(Gap::Missing(s))
            }
            _ => {}
        }
    }
    for name in vars {
        match get(name) {
            Some(s) if s.kind == Kind::Secret => gaps.push(Gap::SecretAsVar(s)),
            Some(s) if s.kind == Kind::Var && s.read_by(worker) => match s.need {
                Need::LocalOnly => gaps.push(Gap::LocalOnlyDeclared(s)),
                Need::SetByDeploy => gaps.push(Gap::DeploySetDeclared(s)),
                Need::Required | Need::Optional => {}
            },
            _ => gaps.push(Gap::Unknown((*name).to_owned())),
        }
    }
    gaps
}

/// The secrets a deployed `worker` needs that `present` (the names
/// `wrangler secret list` shows) lacks.
pub fn missing_secrets(worker: Worker, present: &[&str]) -> Vec<&'static Setting> {
    of(worker)
        .filter(|s| s.kind == Kind::Secret && s.need == Need::Required)
        .filter(|s| !present.contains(&s.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(worker: Worker) -> (Vec<&'static str>, Vec<(BindingKind, &'static str)>) {
        let vars = of(worker)
            .filter(|s| s.kind == Kind::Var && s.need == Need::Required)
            .map(|s| s.name)
            .collect();
        let bindings = of(worker)
            .filter_map(|s| match s.kind {
                Kind::Binding(b) => Some((b, s.name)),
                _ => None,
            })
            .collect();
        (vars, bindings)
    }

    #[test]
    fn names_are_unique_and_every_setting_is_read_by_someone() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert!(!s.workers.is_empty(), "{} is read by no Worker", s.name);
            assert!(
                SETTINGS[i + 1..].iter().all(|t| t.name != s.name),
                "{} is listed twice",
                s.name
            );
        }
    }

    #[test]
    fn a_complete_environment_has_no_gaps() {
        for w in Worker::ALL {
            let (vars, bindings) = complete(w);
            assert_eq!(check_environment(w, &vars, &bindings), vec![], "{w}");
        }
    }

    #[test]
    fn each_missing_required_variable_or_binding_is_named() {
        let (vars, bindings) = complete(Worker::McpServer);
        for drop in &vars {
            let fewer: Vec<&str> = vars.iter().copied().filter(|v| v != drop).collect();
            let gaps = check_environment(Worker::McpServer, &fewer, &bindings);
            assert_eq!(gaps, vec![Gap::Missing(get(drop).unwrap())]);
            assert!(gaps[0].to_string().contains(drop));
        }
        let without_kv: Vec<_> = bindings
            .iter()
            .copied()
            .filter(|(_, n)| *n != "CACHE")
            .collect();
        assert_eq!(
            check_environment(Worker::McpServer, &vars, &without_kv),
            vec![Gap::Missing(get("CACHE").unwrap())]
        );
    }

    #[test]
    fn local_only_secret_deploy_set_and_unknown_variables_are_refused() {
        let (mut vars, bindings) = complete(Worker::AuthPortal);
        vars.extend([
            "STRIPE_API_BASE",
            "STRIPE_SECRET_KEY",
            "GIT_COMMIT",
            "EXACT_CLIENTID",
            "PUBLIC_URL",
        ]);
        let gaps = check_environment(Worker::AuthPortal, &vars, &bindings);
        assert_eq!(
            gaps,
            vec![
                Gap::LocalOnlyDeclared(get("STRIPE_API_BASE").unwrap()),
                Gap::SecretAsVar(get("STRIPE_SECRET_KEY").unwrap()),
                Gap::DeploySetDeclared(get("GIT_COMMIT").unwrap()),
                Gap::Unknown("EXACT_CLIENTID".into()),
                // Read by the mcp-server only: in the portal it is a leftover.
                Gap::Unknown("PUBLIC_URL".into()),
            ]
        );
    }

    #[test]
    fn missing_secrets_are_the_required_ones_not_listed() {
        let present = [
            "TOKEN_ENCRYPTION_KEY",
            "EXACT_CLIENT_SECRET",
            "OPERATOR_TOKEN",
        ];
        let names: Vec<&str> = missing_secrets(Worker::TokenCron, &present)
            .iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, vec!["MAIL_API_KEY"]);
        assert!(missing_secrets(Worker::McpServer, &present).is_empty());
        let portal: Vec<&str> = missing_secrets(Worker::AuthPortal, &[])
            .iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            portal,
            vec![
                "EXACT_CLIENT_SECRET",
                "TOKEN_ENCRYPTION_KEY",
                "OPERATOR_TOKEN",
                "PORTAL_SECRET",
                "STRIPE_SECRET_KEY",
                "STRIPE_WEBHOOK_SECRET"
            ]
        );
    }
}
