//! Reads across agents for the admin dashboard (`crate::dashboard`): the
//! agent API's queries are scoped to one agent, an operator's are not.

use lobster_shared::ids::{AgentId, EventId};

use super::{EventStatus, EventSummary, Millis};

/// A filter over every agent's events. Every field narrows; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct AdminEventQuery {
    pub agent_id: Option<AgentId>,
    pub status: Option<EventStatus>,
    /// A glob on `event_type` (`*` and `?`).
    pub type_glob: Option<String>,
    /// Received at or after.
    pub since: Option<Millis>,
    /// Received before.
    pub until: Option<Millis>,
    /// One event by id.
    pub id: Option<EventId>,
    /// Only events accepted after this sequence number, oldest first (the
    /// live tail); otherwise newest first.
    pub after_seq: Option<i64>,
    /// Only events accepted before this sequence number (the next page).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// A line of the dashboard's event listing.
#[derive(Debug, Clone)]
pub struct AdminEventRow {
    /// Acceptance order, the live tail's cursor.
    pub seq: i64,
    pub agent_id: AgentId,
    pub summary: EventSummary,
}

/// Turns a `*`/`?` glob into a SQL `LIKE` pattern with `\` as the escape.
pub fn glob_to_like(glob: &str) -> String {
    let mut like = String::with_capacity(glob.len());
    for c in glob.chars() {
        match c {
            '*' => like.push('%'),
            '?' => like.push('_'),
            '%' | '_' | '\\' => {
                like.push('\\');
                like.push(c);
            }
            c => like.push(c),
        }
    }
    like
}

#[cfg(test)]
mod tests {
    use super::glob_to_like;

    #[test]
    fn globs_become_escaped_like_patterns() {
        assert_eq!(glob_to_like("push*"), "push%");
        assert_eq!(glob_to_like("a?c"), "a_c");
        assert_eq!(glob_to_like("100%_x\\"), "100\\%\\_x\\\\");
    }
}
