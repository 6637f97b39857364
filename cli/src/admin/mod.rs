//! `lobster-relay admin ...`: manage agents on a relay you run (contract section 5).
//!
//! With `--json` each command prints the API's answer on stdout as it came;
//! without, a rendering for people (see `render`).

mod render;

use clap::{Args, Subcommand};
use lobster_shared::Secret;
use serde_json::{Value, json};

use crate::api::ApiClient;
use crate::context::Context;
use crate::ui::print_data;

/// The `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an agent and print its API key (shown only once) and webhook URL.
    #[command(after_help = "\
Examples:
  export RELAY_ADMIN_TOKEN=lra_...   # printed by the server on first start
  lobster-relay admin create-agent laptop --relay http://127.0.0.1:8080
  lobster-relay admin create-agent ci --json | jq -r .api_key")]
    CreateAgent {
        /// A name for people, e.g. the machine or app it runs on.
        name: String,

        /// The workspace the agent belongs to.
        #[arg(long, default_value = "default", value_name = "W")]
        workspace: String,

        #[command(flatten)]
        auth: AdminAuth,
    },

    /// List agents with their online sessions, last seen time and pending events.
    #[command(after_help = "\
Examples:
  lobster-relay admin list-agents
  lobster-relay admin list-agents --json | jq '.agents[] | select(.online_sessions == 0)'")]
    ListAgents {
        #[command(flatten)]
        auth: AdminAuth,
    },

    /// Revoke an agent: its key stops working at once and live sessions close.
    #[command(after_help = "\
Examples:
  lobster-relay admin revoke-agent agt_01JD...")]
    RevokeAgent {
        /// The agent's id, as `create-agent` or `list-agents` printed it.
        id: String,

        #[command(flatten)]
        auth: AdminAuth,
    },
}

/// The relay's admin token, needed by every `admin` subcommand.
#[derive(Debug, Clone, Args)]
pub struct AdminAuth {
    /// The relay's admin token (the server prints it on first start).
    #[arg(
        long,
        env = "RELAY_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Secret,
}

const AGENTS: [&str; 4] = ["api", "v1", "admin", "agents"];

/// Runs one `admin` subcommand against the relay named by `--relay`.
pub async fn run(ctx: &Context, command: AdminCommand) -> anyhow::Result<()> {
    let (global, ui) = (&ctx.global, &ctx.ui);
    match command {
        AdminCommand::CreateAgent {
            name,
            workspace,
            auth,
        } => {
            let client = ApiClient::new(ctx.relay.clone(), auth.admin_token)?;
            let body = json!({ "name": name, "workspace": workspace });
            let created = client.post(&AGENTS, &body).await?;
            if global.json {
                print_json(&created)
            } else {
                print_data(render::created_agent(&created, client.base()))?;
                Ok(())
            }
        }
        AdminCommand::ListAgents { auth } => {
            let client = ApiClient::new(ctx.relay.clone(), auth.admin_token)?;
            let listed = client.get(&AGENTS).await?;
            if global.json {
                print_json(&listed)
            } else {
                let agents = render::agent_list(&listed);
                if agents.is_empty() {
                    ui.status(
                        "No agents yet. Create one with `lobster-relay admin create-agent NAME`.",
                    );
                    return Ok(());
                }
                print_data(render::agent_table(agents).trim_end())?;
                Ok(())
            }
        }
        AdminCommand::RevokeAgent { id, auth } => {
            let client = ApiClient::new(ctx.relay.clone(), auth.admin_token)?;
            let mut path = AGENTS.to_vec();
            path.push(&id);
            let answer = client.delete(&path).await?;
            if global.json {
                // A 204 has no body; say what happened in the same shape.
                let answer = match answer {
                    Value::Null => json!({ "agent_id": id, "revoked": true }),
                    other => other,
                };
                print_json(&answer)
            } else {
                print_data(format!(
                    "Revoked agent {id}: its API key no longer works and its live sessions were closed."
                ))?;
                Ok(())
            }
        }
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    print_data(serde_json::to_string_pretty(value)?)?;
    Ok(())
}
