//! Signing and verifying webhooks (`docs/security.md`, "Signatures"; `docs/api-reference.md`, "Webhook ingest").
//!
//! Three schemes, all HMAC-SHA256: Standard Webhooks, GitHub and Stripe, plus
//! `none` for development. [`verify()`] is what the relay runs on every ingest
//! request; the `sign_*` functions exist so tests and the CLI's `trigger`
//! produce requests the relay accepts.
//!
//! A signing secret means different bytes to different senders: Standard
//! Webhooks base64-decodes the part after `whsec_`, while Stripe (whose
//! secrets also start with `whsec_`) and GitHub use the whole string as it
//! is. [`SigningKey`] keeps both readings and each scheme picks its own, so
//! one `WEBHOOK_SECRET` copied from any sender's dashboard just works.
//!
//! Layout:
//! - [`header`]: the header names every scheme reads.
//! - `scheme`: [`Scheme`], and how it is spelled in flags, config and JSON.
//! - `key`: [`SigningKey`], a secret read the way each scheme reads it.
//! - `standard`, `github`, `stripe`: one file per scheme, its `sign_*` and
//!   its verification.
//! - `tag`: HMAC tags and judging candidate signatures in constant time.
//! - `verify`: [`verify()`] dispatching by scheme.
//! - `verified`: [`Verified`] with its replay-protection key,
//!   [`VerifyError`], and the readings the schemes share (headers,
//!   timestamps).

pub mod header;

mod github;
mod key;
mod scheme;
mod standard;
mod stripe;
mod tag;
mod verified;
mod verify;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use github::sign_github;
pub use key::{KeyError, SigningKey};
pub use scheme::Scheme;
pub use standard::sign_standard;
pub use stripe::sign_stripe;
pub use verified::{TOLERANCE_SECS, Verified, VerifyError};
pub use verify::verify;
