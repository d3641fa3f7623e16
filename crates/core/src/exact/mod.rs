//! The Exact Online client: OAuth, REST with OData v2 paging and filters,
//! rate limits and typed errors, generic over the `HttpTransport` port and
//! a `Clock`. Region base URLs are configuration (see `crate::region`).

pub mod client;
pub mod dates;
pub mod entities;
pub mod error;
pub mod filter;
pub mod oauth;
pub mod query;
pub mod ratelimit;
pub mod wire;

pub use client::{Download, ExactClient, Listed};
pub use error::{ExactError, RateWindow};
pub use filter::{Cmp, Filter, Guid, Literal};
pub use query::{Division, Query};
