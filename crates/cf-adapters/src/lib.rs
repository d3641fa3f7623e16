//! Cloudflare adapters shared by the three Workers.
//!
//! Each module implements one of core's ports over a platform binding
//! (D1, fetch, KV, clock, randomness) or is one of the edge concerns every
//! Worker shares (binding names, error responses, `/health`). Workers stay
//! thin by calling these instead of the `worker` crate directly.

pub mod bindings;
pub mod d1;
pub mod edge;
pub mod fetch;
pub mod health;
pub mod kv;
pub mod observe;
pub mod platform;
