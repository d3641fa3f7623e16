//! Binding and variable names, looked up in exactly one place. Every name
//! a Worker reads is listed in `boekhouding_core::settings` (a tidy test
//! in `xtask/src/config.rs` holds the Workers and the wrangler files to it).

use worker::Env;

/// The shared D1 database.
pub const DB: &str = "DB";
/// The KV namespace for cached reference data.
pub const CACHE: &str = "CACHE";
/// Deployment name shown by `/health` (`local`, `staging`, `production`).
pub const ENVIRONMENT: &str = "ENVIRONMENT";
/// Git commit the bundle was built from, set by `cargo xtask build`.
pub const GIT_COMMIT: &str = "GIT_COMMIT";
/// The rate limiter in front of the public demo keys (per client address).
pub const DEMO_LIMITER: &str = "DEMO_LIMITER";
/// The Workers Analytics Engine dataset of tool calls (mcp-server).
pub const ANALYTICS: &str = "ANALYTICS";
/// The operator's bearer token for `/health/deep` (a secret).
pub const OPERATOR_TOKEN: &str = "OPERATOR_TOKEN";
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

/// Why the Exact settings are unusable; logged by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExactSettingsError {
    #[error("TOKEN_ENCRYPTION_KEY is not configured")]
    NoKey,
    #[error("TOKEN_ENCRYPTION_KEY is invalid: {0}")]
    BadKey(String),
    #[error("EXACT_CLIENT_ID or EXACT_CLIENT_SECRET is not configured")]
    NoApp,
}

/// The Exact app registration and token keyring from the environment:
/// `TOKEN_ENCRYPTION_KEY`, `EXACT_CLIENT_SECRET` (secrets) and
/// `EXACT_CLIENT_ID`, `EXACT_REDIRECT_URI`, `EXACT_BASE_URL` (variables).
pub fn exact_settings(
    env: &Env,
) -> Result<boekhouding_core::access::ExactSettings, ExactSettingsError> {
    use boekhouding_core::crypto::{Secret, TokenKeyring};
    let key = secret(env, TOKEN_ENCRYPTION_KEY).ok_or(ExactSettingsError::NoKey)?;
    let keyring =
        TokenKeyring::from_config(&key).map_err(|e| ExactSettingsError::BadKey(e.to_string()))?;
    let client_id = var_or(env, "EXACT_CLIENT_ID", "");
    let client_secret = secret(env, "EXACT_CLIENT_SECRET").unwrap_or_default();
    if client_id.is_empty() || client_secret.is_empty() {
        return Err(ExactSettingsError::NoApp);
    }
    let base = var_or(env, "EXACT_BASE_URL", "");
    Ok(boekhouding_core::access::ExactSettings {
        keyring,
        client_id,
        client_secret: Secret::new(client_secret),
        redirect_uri: var_or(env, "EXACT_REDIRECT_URI", ""),
        base_url_override: (!base.is_empty()).then_some(base),
    })
}
