//! Glob patterns over event types, for `--events` and `--forward PATTERN=URL`.
//!
//! `*` matches any run of characters (dots included, so `message.*` matches
//! `message.received` and `message.thread.created`), `?` matches one
//! character, anything else matches itself, case-sensitively. This is the
//! same language the relay applies to `?events=`.

use std::fmt;

/// One glob pattern, e.g. `message.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// A pattern; every string is a valid pattern.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    /// True when `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let text: Vec<char> = text.chars().collect();
        // Iterative matching with one backtrack point: linear for patterns
        // with a single `*`, and never exponential.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some('*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some('?') => {
                    p += 1;
                    t += 1;
                }
                Some(c) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((star_p, star_t)) => {
                        p = star_p + 1;
                        t = star_t + 1;
                        star = Some((star_p, star_t + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|c| *c == '*')
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A comma-separated list of patterns, as `--events` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobList(Vec<Glob>);

impl GlobList {
    /// Parses `message.*, ping`; blank entries are ignored.
    pub fn parse(list: &str) -> Result<Self, String> {
        let globs: Vec<Glob> = list
            .split(',')
            .map(str::trim)
            .filter(|pattern| !pattern.is_empty())
            .map(Glob::new)
            .collect();
        if globs.is_empty() {
            return Err("give at least one event type pattern, e.g. 'message.*,ping'".into());
        }
        Ok(Self(globs))
    }

    /// True when any pattern matches `event_type`.
    pub fn matches(&self, event_type: &str) -> bool {
        self.0.iter().any(|glob| glob.matches(event_type))
    }

    /// The list in the form the relay's `?events=` query takes.
    pub fn to_query(&self) -> String {
        self.0
            .iter()
            .map(Glob::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn star_matches_any_run_including_dots() {
        assert!(m("message.*", "message.received"));
        assert!(m("message.*", "message.thread.created"));
        assert!(m("message.*", "message."));
        assert!(!m("message.*", "message"));
        assert!(!m("message.*", "messages.received"));
        assert!(m("*", ""));
        assert!(m("*", "anything.at.all"));
        assert!(m("*.created", "thread.created"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(m("ping", "ping"));
        assert!(!m("ping", "pings"));
        assert!(!m("ping", "Ping"));
        assert!(!m("", "x"));
        assert!(m("", ""));
    }

    #[test]
    fn question_mark_matches_one_character() {
        assert!(m("v?", "v1"));
        assert!(!m("v?", "v"));
        assert!(!m("v?", "v12"));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let text = "a".repeat(5_000);
        assert!(!m(&format!("{}b", "*a".repeat(50)), &text));
    }

    #[test]
    fn lists_split_on_commas_and_ignore_blanks() {
        let list = GlobList::parse(" message.* , ping,,").unwrap();
        assert!(list.matches("message.sent"));
        assert!(list.matches("ping"));
        assert!(!list.matches("pong"));
        assert_eq!(list.to_query(), "message.*,ping");
        assert!(GlobList::parse(" , ").is_err());
    }
}
