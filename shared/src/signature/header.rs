//! Header names, lowercase so they also work with `HeaderName::from_static`.

/// Standard Webhooks message id, part of the signed content.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks unix timestamp in seconds.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks signatures: space-separated `v1,<base64>` entries.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// GitHub's signature: `sha256=<hex>`.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
/// GitHub's delivery id (not covered by the signature).
pub const GITHUB_DELIVERY: &str = "x-github-delivery";
/// GitHub's event type.
pub const GITHUB_EVENT: &str = "x-github-event";
/// Stripe's signature: `t=<unix>,v1=<hex>[,v1=<hex>...]`.
pub const STRIPE_SIGNATURE: &str = "stripe-signature";
