//! Escaping and the page frame. Every string that reaches a page goes
//! through [`esc`]: event bodies, headers, types, agent names and errors
//! are all chosen by someone else.

use std::fmt::Write as _;

use axum::response::Html;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a query-string component.
pub fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The navigation's entries: path and label.
const NAV: [(&str, &str); 5] = [
    ("/dashboard", "Overview"),
    ("/dashboard/agents", "Agents"),
    ("/dashboard/workspaces", "Workspaces"),
    ("/dashboard/events", "Events"),
    ("/dashboard/tail", "Live tail"),
];

/// A full page for a logged-in operator: navigation, logout, `body`.
/// `body` must already be escaped.
pub fn page(title: &str, csrf: &str, body: &str) -> Html<String> {
    let mut nav = String::new();
    for (path, label) in NAV {
        let current = if label == title {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{current}>{label}</a>");
    }
    Html(format!(
        "{head}<header><strong>lobster-relay</strong><nav>{nav}</nav>\
         <form method=\"post\" action=\"/dashboard/logout\" class=\"logout\">{csrf}\
         <button type=\"submit\">Log out</button></form></header>\
         <main><h1>{title}</h1>{body}</main></body></html>",
        head = head(title),
        title = esc(title),
        csrf = csrf_field(csrf),
    ))
}

/// A page without navigation (login).
pub fn bare(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "{head}<main class=\"narrow\"><h1>{title}</h1>{body}</main></body></html>",
        head = head(title),
        title = esc(title)
    ))
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · lobster-relay</title>\
         <link rel=\"stylesheet\" href=\"/dashboard/assets/app.css\">\
         <script src=\"/dashboard/assets/app.js\" defer></script></head><body>",
        esc(title)
    )
}

/// The hidden CSRF input every state-changing form carries.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A notice box; `text` is escaped here.
pub fn notice(kind: &str, text: &str) -> String {
    format!(
        "<p class=\"notice {kind}\" role=\"status\">{}</p>",
        esc(text)
    )
}

/// Milliseconds since the epoch as RFC 3339, escaped.
pub fn time(ms: crate::store::Millis) -> String {
    esc(&crate::api::rfc3339(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(url_part("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn titles_are_escaped_in_the_frame() {
        let Html(text) = page("<b>", "tok\"en", "");
        assert!(text.contains("<h1>&lt;b&gt;</h1>"), "{text}");
        assert!(text.contains("value=\"tok&quot;en\""), "{text}");
    }
}
