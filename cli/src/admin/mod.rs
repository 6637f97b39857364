//! `lobster-relay admin ...`: manage agents and workspaces on a relay you
//! run (`docs/api-reference.md`, "Admin API").
//!
//! With `--json` each command prints the API's answer on stdout as it came;
//! without, a rendering for people (see `render`).

mod render;
mod workspaces;

use clap::{Args, Subcommand};
use lobster_shared::Secret;
use lobster_shared::api::{AgentList, CreatedAgent};
use lobster_shared::signature::Scheme;
use serde_json::{Value, json};

use crate::api::{ApiClient, typed};
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

    /// Create a workspace: its own signature scheme and signing secrets.
    #[command(after_help = "\
Examples:
  lobster-relay admin create-workspace acme --scheme github --secret \"$GITHUB_WEBHOOK_SECRET\"
  lobster-relay admin create-workspace pay --scheme stripe --secret whsec_... --json
  lobster-relay admin create-workspace dev --scheme none --allow-unsigned
  lobster-relay admin create-agent ci --workspace acme

The relay never shows secrets again, only a fingerprint of each. Start the
relay with --encryption-key to store them encrypted.")]
    CreateWorkspace {
        /// 1 to 64 characters of a-z, 0-9 and -.
        name: String,

        /// standard-webhooks, github, stripe or none.
        #[arg(long, default_value = "standard-webhooks", value_name = "SCHEME")]
        scheme: Scheme,

        /// A signing secret, as the webhook sender shows it; repeat for
        /// several (any one verifies).
        #[arg(long = "secret", value_name = "SECRET")]
        secrets: Vec<Secret>,

        /// Needed with --scheme none: accept webhooks that nobody signed.
        #[arg(long)]
        allow_unsigned: bool,

        #[command(flatten)]
        auth: AdminAuth,
    },

    /// List workspaces (with `default`) and how many secrets each holds.
    #[command(after_help = "\
Examples:
  lobster-relay admin list-workspaces
  lobster-relay admin list-workspaces --json | jq -r '.workspaces[].name'")]
    ListWorkspaces {
        #[command(flatten)]
        auth: AdminAuth,
    },

    /// Replace a workspace's secrets (rotation): only the given ones verify afterwards.
    #[command(after_help = "\
Examples:
  # Rotate without dropping webhooks: first both, then only the new one.
  lobster-relay admin rotate-workspace-secrets acme --secret \"$OLD\" --secret \"$NEW\"
  lobster-relay admin rotate-workspace-secrets acme --secret \"$NEW\"")]
    RotateWorkspaceSecrets {
        /// The workspace's name.
        name: String,

        /// The new set of secrets; repeat for several.
        #[arg(long = "secret", value_name = "SECRET", required = true)]
        secrets: Vec<Secret>,

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
        command @ (AdminCommand::CreateWorkspace { .. }
        | AdminCommand::ListWorkspaces { .. }
        | AdminCommand::RotateWorkspaceSecrets { .. }) => run_workspaces(ctx, command).await,
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
                let created: CreatedAgent = typed(&AGENTS.join("/"), created)?;
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
                let AgentList { agents } = typed(&AGENTS.join("/"), listed)?;
                if agents.is_empty() {
                    ui.status(
                        "No agents yet. Create one with `lobster-relay admin create-agent NAME`.",
                    );
                    return Ok(());
                }
                print_data(render::agent_table(&agents).trim_end())?;
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

/// The workspace subcommands.
async fn run_workspaces(ctx: &Context, command: AdminCommand) -> anyhow::Result<()> {
    let json = ctx.global.json;
    // The path the answer came from, and the verb when it is one workspace.
    let (answer, path, verb) = match command {
        AdminCommand::CreateWorkspace {
            name,
            scheme,
            secrets,
            allow_unsigned,
            auth,
        } => {
            let client = ApiClient::new(ctx.relay.clone(), auth.admin_token)?;
            let body = workspaces::create_body(&name, scheme, &secrets, allow_unsigned);
            let created = client
                .post(&workspaces::WORKSPACES, &workspaces::to_value(&body))
                .await?;
            (created, workspaces::WORKSPACES.join("/"), Some("Created"))
        }
        AdminCommand::ListWorkspaces { auth } => {
            let client = ApiClient::new(ctx.relay.clone(), auth.admin_token)?;
            let listed = client.get(&workspaces::WORKSPACES).await?;
            (listed, workspaces::WORKSPACES.join("/"), None)
        }
        AdminCommand::RotateWorkspaceSecrets {
            name,
            secrets,
            auth,
        } => {
            let client = ApiClient::new(ctx.relay.clone(), auth.admin_token)?;
            let path = workspaces::secrets_path(&name);
            let body = workspaces::to_value(&workspaces::replace_body(&secrets));
            let rotated = client.put(&path, &body).await?;
            (rotated, path.join("/"), Some("Replaced the secrets of"))
        }
        AdminCommand::CreateAgent { .. }
        | AdminCommand::ListAgents { .. }
        | AdminCommand::RevokeAgent { .. } => {
            unreachable!("run dispatches only workspace commands here")
        }
    };
    // --json prints the relay's answer as it came, like every command.
    if json {
        return print_json(&answer);
    }
    match verb {
        Some(verb) => print_data(workspaces::describe(&typed(&path, answer)?, verb))?,
        None => print_data(workspaces::table(&typed(&path, answer)?).trim_end())?,
    }
    Ok(())
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    print_data(serde_json::to_string_pretty(value)?)?;
    Ok(())
}
