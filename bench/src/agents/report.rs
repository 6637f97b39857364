//! The human form of an `agents` run's results.

use std::time::Duration;

use serde_json::Value;

use crate::stats::table;

/// The human form of `results`.
pub fn human(r: &Value, n: usize, created: Duration) -> String {
    let f = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::Number(x) => match x.as_f64() {
            Some(x) if x.fract() != 0.0 => format!("{x:.1}"),
            _ => x.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let kinds = |v: &Value| match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, c)| format!("{k}x{c}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".into(),
    };
    let mut out = format!(
        "created {n} agents in {:.2}s ({:.0}/s)\n",
        created.as_secs_f64(),
        n as f64 / created.as_secs_f64().max(1e-9)
    );
    let c = &r["connect"]["phase"];
    out += "connect (ms from starting the client processes until each agent's first `ready`):\n";
    out += &table(
        &[
            "ready",
            "all ready",
            "p50",
            "p99",
            "max",
            "relay cpu ms",
            "failed attempts",
        ],
        &[vec![
            f(&c["ready"]),
            f(&c["all_ms"]),
            f(&c["ready_ms"]["p50_ms"]),
            f(&c["ready_ms"]["p99_ms"]),
            f(&c["ready_ms"]["max_ms"]),
            f(&c["relay_cpu_ms"]),
            kinds(&c["failed_attempts"]),
        ]],
    );
    let m = &r["relay_memory"];
    if m["unavailable"].is_null() {
        out += "relay memory (kB; per agent = after idle minus before, over N):\n";
        out += &table(
            &[
                "rss before",
                "connected",
                "after idle",
                "rss/agent B",
                "anon/agent B",
            ],
            &[vec![
                f(&m["rss_kb_before"]),
                f(&m["rss_kb_connected"]),
                f(&m["rss_kb_after_idle"]),
                f(&m["rss_bytes_per_agent"]),
                f(&m["anon_bytes_per_agent"]),
            ]],
        );
    } else {
        out += &format!("relay memory: {}\n", f(&m["unavailable"]));
    }
    let i = &r["idle"];
    out += "idle (CPU % of one core):\n";
    out += &table(
        &["window s", "relay", "clients", "dropped"],
        &[vec![
            f(&i["window_s"]),
            f(&i["relay_cpu_pct"]),
            f(&i["clients_cpu_pct"]),
            f(&i["sessions_dropped"]),
        ]],
    );
    let probe_row = |name: String, p: &Value| {
        vec![
            name,
            f(&p["accepted"]),
            f(&p["received"]),
            f(&p["all_received_ms"]),
            f(&p["post_to_agent"]["p50_ms"]),
            f(&p["post_to_agent"]["p99_ms"]),
            kinds(&p["post_errors"]),
        ]
    };
    out += "probes (all received: ms from the first post, or from the restart signal):\n";
    let mut rows = vec![probe_row("idle".into(), &r["probe_idle"])];
    for x in r["restarts"].as_array().into_iter().flatten() {
        rows.push(probe_row(
            format!("after SIG{}", f(&x["signal"])),
            &x["probes"],
        ));
    }
    out += &table(
        &[
            "round",
            "202",
            "received",
            "all received",
            "p50",
            "p99",
            "errors",
        ],
        &rows,
    );
    let restarts = r["restarts"].as_array().cloned().unwrap_or_default();
    if !restarts.is_empty() {
        out += "restart (ms from the signal; back = the agent's next `ready`; relay cpu = the new process: start-up, reconnects, probes):\n";
        let rows: Vec<Vec<String>> = restarts
            .iter()
            .map(|x| {
                let p = &x["reconnect"];
                vec![
                    format!("SIG{}", f(&x["signal"])),
                    f(&x["relay_exited_ms"]),
                    f(&x["relay_listening_ms"]),
                    f(&p["ready"]),
                    f(&p["all_ms"]),
                    f(&p["ready_ms"]["p50_ms"]),
                    f(&p["ready_ms"]["p99_ms"]),
                    f(&x["probes"]["all_received_ms"]),
                    f(&p["relay_cpu_ms"]),
                    kinds(&p["failed_attempts"]),
                ]
            })
            .collect();
        out += &table(
            &[
                "signal",
                "exited",
                "listening",
                "back",
                "all back",
                "p50",
                "p99",
                "probes in",
                "relay cpu ms",
                "failed attempts",
            ],
            &rows,
        );
    }
    out
}
