//! Binding and variable names, looked up in exactly one place.

use worker::Env;

/// The shared D1 database.
pub const DB: &str = "DB";
/// The KV namespace for cached reference data.
pub const CACHE: &str = "CACHE";
/// Deployment name shown by `/health` (`local`, `staging`, `production`).
pub const ENVIRONMENT: &str = "ENVIRONMENT";
/// Git commit the bundle was built from, set by `cargo xtask build`.
pub const GIT_COMMIT: &str = "GIT_COMMIT";
/// AES-256-GCM keyring for Exact tokens (see `boekhouding_core::crypto`).
pub const TOKEN_ENCRYPTION_KEY: &str = "TOKEN_ENCRYPTION_KEY";

/// A plain variable, or `default` when it is not configured.
pub fn var_or(env: &Env, name: &str, default: &str) -> String {
    env.var(name)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| default.to_owned())
}

/// A secret (or, locally, a `.dev.vars` entry); `None` when absent.
pub fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name).ok().map(|s| s.to_string())
}
