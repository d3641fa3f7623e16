//! Plans that pay: Stripe Checkout and the Billing Portal for changing
//! plan, signed webhooks, and the rule that turns a subscription's state
//! into a plan.
//!
//! - [`signature`]: `Stripe-Signature` verification (several secrets, 300 s).
//! - [`entitlement`]: price → plan (once, [`entitlement::PriceBook`]) and
//!   [`entitlement::decide`], pure over the subscription's current state.
//! - [`limits`]: what a smaller plan pauses and stops (shown, then enforced).
//! - [`stripe`]: the API calls, form-encoded, idempotent creates.
//! - [`webhook`]: one delivery handled end to end over storage.

pub mod entitlement;
pub mod limits;
pub mod signature;
pub mod stripe;
pub mod webhook;
