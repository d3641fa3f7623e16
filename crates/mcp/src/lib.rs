//! The MCP protocol engine, free of HTTP plumbing and of the Workers
//! runtime: it takes what arrived (method, headers, body) and returns what
//! to answer (status, headers, body), and delegates the tools to a
//! [`ToolHost`].
//!
//! One engine serves both protocol eras on `POST /mcp`:
//!
//! - legacy revisions 2025-06-18 and 2025-11-25: `initialize` handshake
//!   (answered statelessly, no session), `ping`, JSON responses;
//! - the stateless 2026-07-28 revision: every request carries
//!   `_meta["io.modelcontextprotocol/protocolVersion"]` (a request whose
//!   `MCP-Protocol-Version` header names 2026-07-28 without it is invalid
//!   params), the mirrored `MCP-Protocol-Version`/`Mcp-Method`/`Mcp-Name`
//!   headers are checked, `server/discover` is served and `initialize` is
//!   not (404), results carry `resultType` and cacheable ones (lists,
//!   discovery, `resources/read`) `ttlMs`/`cacheScope`.
//!
//! The MCP Apps extension (`io.modelcontextprotocol/ui`) is negotiated in
//! both eras ([`apps`]); a client that does not negotiate it gets exactly
//! the answers it got before the extension existed.

pub mod apps;
pub mod auth;
pub mod engine;
pub mod http;
pub mod observe;
pub mod tools;

pub use engine::{Engine, ServerIdentity, ToolCallOutcome, ToolHost};
pub use http::{HttpCall, HttpReply, TransportPolicy, handle};
