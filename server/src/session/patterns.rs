//! The `?events=` filter of a session.

use crate::api::error::ApiError;

/// Validates `?events=` globs: `*` and `?` wildcards over a safe alphabet.
pub fn parse_patterns(text: &str) -> Result<Vec<String>, ApiError> {
    let patterns: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |p: &String| {
        p.len() <= 200
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:/*?".contains(c))
    };
    if patterns.len() > 32 || !patterns.iter().all(valid) {
        return Err(ApiError::bad_request(
            "invalid_events_filter",
            "events must be up to 32 comma-separated patterns of letters, digits, . _ - : / and the wildcards * ?",
        ));
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_accept_globs_and_refuse_glob_classes() {
        assert_eq!(
            parse_patterns("message.*, ping").unwrap(),
            vec!["message.*", "ping"]
        );
        assert!(parse_patterns("").unwrap().is_empty());
        assert!(parse_patterns("a[bc]").is_err());
        assert!(parse_patterns("drop table;").is_err());
        assert!(parse_patterns(&vec!["a"; 33].join(",")).is_err());
    }
}
