//! `/healthz` and `/readyz`.

use crate::state::AppState;

pub async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the store answers and, where configured, Redis does.
pub async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (storage, storage_error) = match state.store.ping().await {
        Ok(()) => ("ok".to_owned(), None),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: storage unreachable");
            ("unreachable".to_owned(), Some(err.to_string()))
        }
    };
    let redis = state.bus.ping().await.map(|answer| match answer {
        Ok(()) => "ok".to_owned(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: redis unreachable");
            "unreachable".to_owned()
        }
    });
    let ready = storage == "ok" && redis.as_deref().is_none_or(|r| r == "ok");
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "storage": storage,
        "redis": redis,
    });
    if let Some(error) = storage_error {
        body["storage_error"] = serde_json::Value::String(error);
    }
    (status, axum::Json(body)).into_response()
}
