//! Reading what an admin API handler answered.

use axum::response::Response;

/// What an admin API handler answered: its JSON on success, else its
/// error message. The dashboard calls the admin API's own handlers so that
/// validation, logging and wake-ups are the same whichever way an operator
/// goes.
pub(super) async fn answer(response: Response) -> Result<serde_json::Value, String> {
    let ok = response.status().is_success();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if ok {
        Ok(value)
    } else {
        Err(value["error"]["message"]
            .as_str()
            .unwrap_or("the request failed")
            .to_owned())
    }
}
