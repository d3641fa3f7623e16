//! Pure domain of Praat met je Boekhouding.
//!
//! Everything here is deterministic and free of I/O: effects (SQL, time,
//! randomness, HTTP) are ports that the Workers implement over Cloudflare
//! bindings and tests implement natively. See `docs/ARCHITECTURE.md`.

pub mod access;
pub mod account;
pub mod alerts;
pub mod authorization;
pub mod billing;
pub mod caller;
pub mod counting;
pub mod cron;
pub mod crypto;
pub mod csrf;
pub mod exact;
pub mod health;
pub mod lifecycle;
pub mod mail;
pub mod observe;
pub mod onboarding;
pub mod plan;
pub mod ports;
pub mod region;
pub mod settings;
pub mod setup;
pub mod storage;
pub mod token_cache;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The product's version, reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
