//! Where the agent's API key comes from.
//!
//! Today: `--api-key` or `LOBSTER_RELAY_API_KEY`. `login` (next) adds the OS
//! keyring and `credentials.toml` in the config dir as fallbacks, read here
//! so that every command that needs a key gets them for free.

use lobster_shared::Secret;

use crate::cli::GlobalArgs;
use crate::exit::Fatal;

/// The API key to use, or an authentication failure (exit code 3) that says
/// how to provide one.
pub fn api_key(global: &GlobalArgs) -> Result<Secret, Fatal> {
    match &global.api_key {
        Some(key) if !key.expose().trim().is_empty() => Ok(Secret::new(key.expose().trim())),
        _ => Err(Fatal::auth(
            "no API key given",
            "pass --api-key KEY or set LOBSTER_RELAY_API_KEY (an admin creates keys with \
             `lobster-relay admin create-agent NAME`)",
        )),
    }
}
