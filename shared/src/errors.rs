//! Errors as the one line a user reads.

/// An error and its sources as one line, `outer: inner: root`, skipping a
/// source whose text the previous one already includes (many errors
/// repeat their cause in their own message).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn causes_follow_the_error_and_repeats_are_skipped() {
        let root = Layer("connection refused", None);
        let repeat = Layer("connect: connection refused", Some(Box::new(root)));
        let top = Layer("request failed", Some(Box::new(repeat)));
        assert_eq!(
            error_chain(&top),
            "request failed: connect: connection refused"
        );
        assert_eq!(error_chain(&Layer("alone", None)), "alone");
    }
}
