//! The relay's admin and agent HTTP APIs, as a test uses them.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::eventually;
use crate::relay::{ADMIN_TOKEN, Relay};

/// An agent created through the admin API.
#[derive(Debug, Clone)]
pub struct Agent {
    pub agent_id: String,
    pub name: String,
    pub relay_id: String,
    pub api_key: String,
    /// `{relay url}/api/v1/webhook/{relay_id}`, built from the port the relay
    /// really listens on (it stays valid across restarts on the same port).
    pub webhook_url: String,
    /// The `webhook_url` the relay answered with.
    pub reported_webhook_url: String,
    /// The whole `201` body.
    pub created: Value,
}

/// An HTTP answer: status, headers and body (parsed as JSON where it is).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body as JSON, `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Answer {
    pub async fn read(resp: reqwest::Response) -> anyhow::Result<Self> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.context("reading the answer's body")?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Self {
            status,
            headers,
            text,
            json,
        })
    }

    /// Panics unless this is `status` with the contract's error body
    /// `{"error": {"code": "snake_case", "message": "..."}}`; returns the code.
    #[track_caller]
    pub fn assert_error(&self, status: u16) -> String {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        let code = self.json["error"]["code"].as_str().unwrap_or_else(|| {
            panic!(
                "{status} without a JSON error body with a code: {}",
                self.text
            )
        });
        assert!(
            !code.is_empty()
                && code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "error code {code:?} is not snake_case"
        );
        let message = self.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "{status} error without a message: {}",
            self.text
        );
        code.to_owned()
    }
}

/// How many delivery attempts an event JSON records: `attempts` may be a
/// count or the list of attempts.
pub fn attempts_of(event: &Value) -> u64 {
    match &event["attempts"] {
        Value::Array(list) => list.len() as u64,
        other => other.as_u64().unwrap_or(0),
    }
}

impl Relay {
    /// `{url}/api/v1/webhook/{relay_id}`.
    pub fn webhook_url(&self, relay_id: &str) -> String {
        format!("{}/api/v1/webhook/{relay_id}", self.url())
    }

    /// Any request to the relay; `token` goes in `Authorization: Bearer`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let mut req = self.http.request(method, format!("{}{path}", self.url()));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Answer::read(
            req.send()
                .await
                .with_context(|| format!("requesting {path}"))?,
        )
        .await
    }

    /// `POST /api/v1/admin/agents` in the `default` workspace; expects `201`.
    pub async fn create_agent(&self, name: &str) -> anyhow::Result<Agent> {
        let body = json!({"name": name, "workspace": "default"});
        let answer = self
            .request(
                Method::POST,
                "/api/v1/admin/agents",
                Some(ADMIN_TOKEN),
                Some(body),
            )
            .await?;
        ensure!(
            answer.status == 201,
            "creating agent {name}: {} {}",
            answer.status,
            answer.text
        );
        let field = |key: &str| {
            answer.json[key]
                .as_str()
                .map(str::to_owned)
                .with_context(|| {
                    format!(
                        "the 201 for agent {name} has no string {key:?}: {}",
                        answer.text
                    )
                })
        };
        let relay_id = field("relay_id")?;
        Ok(Agent {
            agent_id: field("agent_id")?,
            name: field("name")?,
            webhook_url: self.webhook_url(&relay_id),
            reported_webhook_url: field("webhook_url")?,
            relay_id,
            api_key: field("api_key")?,
            created: answer.json.clone(),
        })
    }

    /// `DELETE /api/v1/admin/agents/{agent_id}`; expects a 2xx.
    pub async fn revoke(&self, agent_id: &str) -> anyhow::Result<Answer> {
        let path = format!("/api/v1/admin/agents/{agent_id}");
        let answer = self
            .request(Method::DELETE, &path, Some(ADMIN_TOKEN), None)
            .await?;
        ensure!(
            (200..300).contains(&answer.status),
            "revoking {agent_id}: {} {}",
            answer.status,
            answer.text
        );
        Ok(answer)
    }

    /// `GET {path}` with an agent's key.
    pub async fn agent_get(&self, api_key: &str, path: &str) -> anyhow::Result<Answer> {
        self.request(Method::GET, path, Some(api_key), None).await
    }

    /// `GET /api/v1/agent/events/{id}`; expects `200`.
    pub async fn event(&self, api_key: &str, id: &str) -> anyhow::Result<Value> {
        let answer = self
            .agent_get(api_key, &format!("/api/v1/agent/events/{id}"))
            .await?;
        if answer.status != 200 {
            bail!("GET event {id}: {} {}", answer.status, answer.text);
        }
        Ok(answer.json)
    }

    /// Polls the event until its `status` is `status`; returns the event.
    pub async fn wait_event_status(
        &self,
        api_key: &str,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let what = format!("event {id} to be {status}");
        eventually(&what, timeout, || async {
            let event = self.event(api_key, id).await?;
            ensure!(
                event["status"] == status,
                "status {} (attempts {})",
                event["status"],
                event["attempts"]
            );
            Ok(event)
        })
        .await
    }
}
