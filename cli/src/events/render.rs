//! Human renderings of agent API answers about events.
//!
//! Answers are read as loose JSON: a field the relay adds later must not
//! break an older CLI, and a missing one shows as `-`. Colour (statuses)
//! only when stdout is a terminal and `NO_COLOR` is unset.

use std::fmt::Write as _;

use console::{measure_text_width, pad_str, style};
use serde_json::Value;

use crate::ui::local_time;

fn field(value: &Value, name: &str) -> String {
    match value.get(name) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// A status, coloured by what it means for the user.
fn status(text: &str) -> String {
    let styled = style(text);
    match text {
        "delivered" => styled.green(),
        "pending" | "delivering" => styled.yellow(),
        "failed" => styled.red(),
        _ => styled.dim(),
    }
    .to_string()
}

/// Rows padded to the widest cell of each column (ANSI codes not counted).
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| measure_text_width(cell))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&pad_str(cell, widths[c], console::Alignment::Left, None));
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// `events list`: one row per event.
pub fn event_table(events: &[Value]) -> String {
    let mut rows = vec![
        ["ID", "TYPE", "STATUS", "RECEIVED", "ATTEMPTS"]
            .map(|h| style(h).bold().to_string())
            .to_vec(),
    ];
    for event in events {
        rows.push(vec![
            field(event, "id"),
            field(event, "event_type"),
            status(&field(event, "status")),
            local_time(&field(event, "received_at")),
            attempt_count(event).to_string(),
        ]);
    }
    table(&rows)
}

fn attempt_count(event: &Value) -> u64 {
    match &event["attempts"] {
        Value::Array(list) => list.len() as u64,
        other => other.as_u64().unwrap_or(0),
    }
}

/// `events show`: the summary, headers, body and attempt history.
pub fn event_detail(event: &Value) -> String {
    let mut out = String::new();
    let label = |text: &str| style(format!("{text:<10}")).bold().to_string();
    let _ = writeln!(out, "{}{}", label("Event"), field(event, "id"));
    let _ = writeln!(out, "{}{}", label("Type"), field(event, "event_type"));
    let _ = writeln!(
        out,
        "{}{} ({} attempts)",
        label("Status"),
        status(&field(event, "status")),
        attempt_count(event)
    );
    let _ = writeln!(
        out,
        "{}{}",
        label("Received"),
        local_time(&field(event, "received_at"))
    );

    let _ = writeln!(out, "\n{}", style("Headers").bold());
    for pair in event["headers"].as_array().into_iter().flatten() {
        let name = pair.get(0).and_then(Value::as_str).unwrap_or("?");
        let value = pair.get(1).and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(out, "  {name}: {value}");
    }

    let body = event["body"].as_str().unwrap_or_default();
    match event["body_encoding"].as_str() {
        Some("base64") => {
            let _ = writeln!(
                out,
                "\n{} (binary, base64; `--body` prints the bytes)",
                style("Body").bold()
            );
            let _ = writeln!(out, "{body}");
        }
        _ => {
            let _ = writeln!(out, "\n{} ({} bytes)", style("Body").bold(), body.len());
            // Pretty JSON reads better; `--body` and `--json` keep the bytes.
            let shown = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|json| serde_json::to_string_pretty(&json).ok())
                .unwrap_or_else(|| body.to_owned());
            let _ = writeln!(out, "{shown}");
        }
    }

    let history = event["attempt_history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !history.is_empty() {
        let _ = writeln!(out, "\n{}", style("Attempts").bold());
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|attempt| {
                let outcome = field(attempt, "outcome");
                let outcome = match outcome.as_str() {
                    "delivered" => style(outcome).green().to_string(),
                    "nacked" | "timeout" => style(outcome).red().to_string(),
                    _ => style(outcome).yellow().to_string(),
                };
                let error = match attempt.get("error") {
                    Some(Value::String(error)) if !error.is_empty() => error.clone(),
                    _ => String::new(),
                };
                vec![
                    format!("  #{}", field(attempt, "attempt")),
                    local_time(&field(attempt, "at")),
                    outcome,
                    field(attempt, "session_id"),
                    error,
                ]
            })
            .collect();
        let _ = writeln!(out, "{}", table(&rows));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_lines_up_and_keeps_every_event() {
        let events = [
            json!({"id": "evt_1", "event_type": "message.received", "status": "delivered",
                   "received_at": "2026-11-28T12:00:01Z", "attempts": 1}),
            json!({"id": "evt_22", "event_type": "ping", "status": "failed",
                   "received_at": "2026-11-28T12:00:02Z", "attempts": 20}),
        ];
        let text = console::strip_ansi_codes(&event_table(&events)).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID      TYPE"), "{text}");
        let type_at = lines[0].find("TYPE").unwrap();
        assert_eq!(lines[2].find("ping"), Some(type_at), "{text}");
        assert!(lines[2].ends_with(" 20"), "{text}");
    }

    #[test]
    fn details_show_headers_body_and_attempts() {
        let event = json!({
            "id": "evt_1", "event_type": "order.paid", "status": "delivered",
            "received_at": "2026-11-28T12:00:01Z", "attempts": 2,
            "headers": [["content-type", "application/json"], ["x-a", "b"]],
            "body": "{\"a\":1}", "body_encoding": "utf8",
            "attempt_history": [
                {"attempt": 1, "at": "2026-11-28T12:00:02Z", "session_id": "ses_1",
                 "outcome": "nacked", "error": "HTTP 500"},
                {"attempt": 2, "at": "2026-11-28T12:00:04Z", "session_id": "ses_1",
                 "outcome": "delivered", "error": null}
            ]
        });
        let text = console::strip_ansi_codes(&event_detail(&event)).to_string();
        assert!(text.contains("Event     evt_1"), "{text}");
        assert!(text.contains("  x-a: b"), "{text}");
        assert!(text.contains("\"a\": 1"), "pretty JSON body: {text}");
        assert!(text.contains("#1"), "{text}");
        assert!(text.contains("HTTP 500"), "{text}");
        assert!(text.contains("delivered (2 attempts)"), "{text}");
    }

    #[test]
    fn binary_bodies_say_so() {
        let event = json!({"id": "evt_1", "body": "AAEC", "body_encoding": "base64"});
        let text = console::strip_ansi_codes(&event_detail(&event)).to_string();
        assert!(text.contains("binary, base64"), "{text}");
        assert!(text.contains("AAEC"), "{text}");
    }
}
