//! Human renderings of agent API answers about events.
//!
//! Answers arrive typed ([`lobster_shared::api`]): a field the relay adds
//! later is ignored, a missing one is an error naming it (`--json` prints
//! the answer as it came). Colour (statuses) only when stdout is a terminal
//! and `NO_COLOR` is unset.

use std::fmt::Write as _;

use console::style;
use lobster_shared::api::{BodyEncoding, EventDetail, EventSummary};

use crate::ui::{local_time, printable, printable_multiline, table};

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

/// The widest event type `events list` shows.
const MAX_TYPE_WIDTH: usize = 40;

/// `events list`: one row per event.
pub fn event_table(events: &[EventSummary]) -> String {
    let mut rows = vec![
        ["ID", "TYPE", "STATUS", "RECEIVED", "ATTEMPTS"]
            .map(|h| style(h).bold().to_string())
            .to_vec(),
    ];
    for event in events {
        rows.push(vec![
            printable(&event.id).into_owned(),
            // The sender picks the type: a long one must not push the
            // other columns off the screen (`--json` has it whole).
            console::truncate_str(&printable(&event.event_type), MAX_TYPE_WIDTH, "…").into_owned(),
            status(&event.status),
            local_time(&event.received_at),
            event.attempts.to_string(),
        ]);
    }
    table(&rows)
}

/// Each line of `text` cut to `columns` display columns (ANSI codes not
/// counted), ending in `…` where cut, so a row never wraps.
pub fn fit_width(text: &str, columns: usize) -> String {
    text.lines()
        .map(|line| console::truncate_str(line, columns.max(1), "…").into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `events show`: the summary, headers, body and attempt history. The body
/// is shown as received; `pretty` re-indents a JSON body (key order and
/// number spelling kept). Everything the sender chose goes through
/// [`printable`], so a body cannot move the cursor or recolour the terminal.
pub fn event_detail(event: &EventDetail, pretty: bool) -> String {
    let mut out = String::new();
    let summary = &event.summary;
    let label = |text: &str| style(format!("{text:<10}")).bold().to_string();
    let _ = writeln!(out, "{}{}", label("Event"), printable(&summary.id));
    let _ = writeln!(out, "{}{}", label("Type"), printable(&summary.event_type));
    let _ = writeln!(
        out,
        "{}{} ({} attempts)",
        label("Status"),
        status(&summary.status),
        summary.attempts
    );
    let _ = writeln!(
        out,
        "{}{}",
        label("Received"),
        local_time(&summary.received_at)
    );

    let _ = writeln!(out, "\n{}", style("Headers").bold());
    for (name, value) in &event.headers {
        let _ = writeln!(out, "  {}: {}", printable(name), printable(value));
    }

    let body = event.body.as_str();
    match event.body_encoding {
        BodyEncoding::Base64 => {
            let _ = writeln!(
                out,
                "\n{} (binary, base64; `--body` prints the bytes)",
                style("Body").bold()
            );
            let _ = writeln!(out, "{body}");
        }
        BodyEncoding::Utf8 => {
            let reindented = if pretty { reindent_json(body) } else { None };
            let note = if reindented.is_some() {
                ", re-indented"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "\n{} ({} bytes{note})",
                style("Body").bold(),
                body.len()
            );
            let shown = reindented.as_deref().unwrap_or(body);
            let _ = writeln!(out, "{}", printable_multiline(shown));
        }
    }

    let history = &event.attempt_history;
    if !history.is_empty() {
        let _ = writeln!(out, "\n{}", style("Attempts").bold());
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|attempt| {
                let outcome = attempt.outcome.as_str();
                let outcome = match outcome {
                    "delivered" => style(outcome).green().to_string(),
                    "nacked" | "timeout" => style(outcome).red().to_string(),
                    _ => style(outcome).yellow().to_string(),
                };
                vec![
                    format!("  #{}", attempt.attempt),
                    local_time(&attempt.at),
                    outcome,
                    attempt.session_id.as_deref().unwrap_or("-").to_owned(),
                    printable(attempt.error.as_deref().unwrap_or_default()).into_owned(),
                ]
            })
            .collect();
        let _ = writeln!(out, "{}", table(&rows));
    }
    out.trim_end().to_owned()
}

/// `text` re-indented with two spaces per level when it is one valid JSON
/// value; `None` otherwise. Works on the text itself, not a parsed value, so
/// keys keep their order and numbers their spelling (`1.50`, `1e3`, digits
/// beyond what an f64 holds).
pub fn reindent_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|&next| next == '}' || next == ']') {
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                if !matches!(out.chars().last(), Some('{' | '[')) {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A listed event from the fields a test cares about.
    fn summary(fields: Value) -> EventSummary {
        let mut event = json!({"id": "evt_1", "event_type": "x", "status": "pending",
                               "received_at": "2026-11-28T12:00:01Z", "attempts": 0});
        event
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value(event).unwrap()
    }

    /// An event's detail from the fields a test cares about.
    fn detail(fields: Value) -> EventDetail {
        let mut event = json!({"id": "evt_1", "event_type": "x", "status": "pending",
                               "received_at": "2026-11-28T12:00:01Z", "attempts": 0,
                               "headers": [], "body": "", "body_encoding": "utf8",
                               "attempt_history": []});
        event
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value(event).unwrap()
    }

    #[test]
    fn the_table_lines_up_and_keeps_every_event() {
        let events = [
            summary(
                json!({"id": "evt_1", "event_type": "message.received", "status": "delivered",
                   "received_at": "2026-11-28T12:00:01Z", "attempts": 1}),
            ),
            summary(
                json!({"id": "evt_22", "event_type": "ping", "status": "failed",
                   "received_at": "2026-11-28T12:00:02Z", "attempts": 20}),
            ),
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
    fn rows_fit_the_terminal_width() {
        let events = [summary(
            json!({"id": "evt_01JD0000000000000000000000", "event_type": "message.received",
                             "status": "delivered", "received_at": "2026-11-28T12:00:01Z", "attempts": 1}),
        )];
        let table = event_table(&events);
        let fitted = fit_width(&table, 30);
        for line in fitted.lines() {
            assert!(console::measure_text_width(line) <= 30, "{line:?}");
        }
        assert!(fitted.lines().nth(1).unwrap().ends_with('…'));
        assert_eq!(fit_width(&table, 500), table, "wide enough: unchanged");
    }

    #[test]
    fn a_long_event_type_is_cut_to_keep_the_columns_on_screen() {
        let long = "x".repeat(500);
        let events = [summary(
            json!({"id": "evt_1", "event_type": long, "status": "pending",
                             "received_at": "2026-11-28T12:00:01Z", "attempts": 0}),
        )];
        let text = console::strip_ansi_codes(&event_table(&events)).to_string();
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.contains(&format!("{}…", "x".repeat(MAX_TYPE_WIDTH - 1))),
            "{row}"
        );
        assert!(console::measure_text_width(row) < 120, "{row}");
    }

    #[test]
    fn details_show_headers_body_and_attempts() {
        let event = detail(json!({
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
        }));
        let text = console::strip_ansi_codes(&event_detail(&event, false)).to_string();
        assert!(text.contains("Event     evt_1"), "{text}");
        assert!(text.contains("  x-a: b"), "{text}");
        assert!(
            text.contains("(7 bytes)\n{\"a\":1}\n"),
            "the body as received: {text}"
        );
        assert!(text.contains("#1"), "{text}");
        assert!(text.contains("HTTP 500"), "{text}");
        assert!(text.contains("delivered (2 attempts)"), "{text}");
    }

    #[test]
    fn binary_bodies_say_so() {
        let event = detail(json!({"body": "AAEC", "body_encoding": "base64"}));
        let text = console::strip_ansi_codes(&event_detail(&event, false)).to_string();
        assert!(text.contains("binary, base64"), "{text}");
        assert!(text.contains("AAEC"), "{text}");
    }

    #[test]
    fn pretty_bodies_keep_key_order_and_number_spelling() {
        let body = r#"{"zeta":1.50,"alpha":[ ],"big":12345678901234567890,"s":"a,b:{c}\"","n":{"y":null,"x":[1,2]}}"#;
        let pretty = reindent_json(body).unwrap();
        assert_eq!(
            pretty,
            "{\n  \"zeta\": 1.50,\n  \"alpha\": [],\n  \"big\": 12345678901234567890,\n  \"s\": \"a,b:{c}\\\"\",\n  \"n\": {\n    \"y\": null,\n    \"x\": [\n      1,\n      2\n    ]\n  }\n}"
        );
        assert_eq!(reindent_json("not json"), None);
        assert_eq!(reindent_json("{\"a\":1} trailing"), None);
        let event = detail(json!({"body": body, "body_encoding": "utf8"}));
        let text = console::strip_ansi_codes(&event_detail(&event, true)).to_string();
        assert!(text.contains("re-indented"), "{text}");
        assert!(text.find("zeta") < text.find("alpha"), "{text}");
    }

    #[test]
    fn what_the_sender_chose_cannot_drive_the_terminal() {
        let event = detail(json!({
            "id": "evt_1", "event_type": "x\u{1b}[2Jy",
            "headers": [["x-evil\u{1b}[31m", "v\r\u{9b}1m"]],
            "body": "line one\nline two\u{1b}]0;title\u{7}\r", "body_encoding": "utf8",
            "attempt_history": [{"attempt": 1, "at": "2026-11-28T12:00:02Z", "session_id": null,
                                 "outcome": "nacked", "error": "bad\u{1b}[2J"}]
        }));
        let text = event_detail(&event, false);
        let plain = console::strip_ansi_codes(&text).to_string();
        for forbidden in ['\u{1b}', '\r', '\u{9b}', '\u{7}'] {
            assert!(
                !plain.contains(forbidden),
                "{forbidden:?} reached the terminal: {plain:?}"
            );
        }
        assert!(
            plain.contains("line one\nline two"),
            "line feeds stay: {plain:?}"
        );
    }
}
