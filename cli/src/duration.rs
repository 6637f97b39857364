//! Durations given on the command line or in `config.toml`.

use std::time::Duration;

/// The longest duration a flag takes. `Instant + Duration` panics on
/// overflow, so an absurd `--timeout 600000000y` must be a usage error,
/// not a backtrace.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `500ms`, `30s`, `5m`, `2h`, `7d`: at most 100 years.
pub fn parse(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text.trim())
        .map_err(|err| format!("{text:?} is not a duration ({err}): use e.g. 500ms, 30s, 5m"))?;
    if parsed > MAX {
        return Err(format!("{text:?} is too long: at most 100 years (36500d)"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_parsed_and_bounded() {
        assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(" 5m "), Ok(Duration::from_secs(300)));
        assert!(parse("soon").unwrap_err().contains("500ms"));
        assert!(
            parse("600000000y")
                .unwrap_err()
                .contains("at most 100 years")
        );
        assert!(parse("99999999999999999999s").is_err());
    }
}
