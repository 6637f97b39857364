//! The events page's filter form, as a store query.

use std::collections::HashMap;

use lobster_shared::ids::{AgentId, EventId};

use crate::api::replay::time_bound;
use crate::store::EventStatus;
use crate::store::dashboard::AdminEventQuery;

/// The store query a filter form means; `None` when it matches nothing (an
/// agent or event id no agent or event can have).
pub(super) fn query_of(
    filter: &HashMap<String, String>,
    limit: usize,
) -> Result<Option<AdminEventQuery>, String> {
    let field = |k: &str| {
        filter
            .get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let status = match field("status") {
        None => None,
        Some(s) => Some(EventStatus::parse(&s).ok_or_else(|| format!("unknown status {s:?}"))?),
    };
    let since = field("since").map(|s| time_bound(&s)).transpose()?;
    let until = field("until").map(|s| time_bound(&s)).transpose()?;
    let before_seq = match field("before") {
        None => None,
        Some(b) => Some(
            b.parse()
                .map_err(|_| format!("{b:?} is not a page cursor"))?,
        ),
    };
    let Ok(agent_id) = field("agent").map(|a| AgentId::parse(&a)).transpose() else {
        return Ok(None);
    };
    let Ok(id) = field("id").map(|i| EventId::parse(&i)).transpose() else {
        return Ok(None);
    };
    Ok(Some(AdminEventQuery {
        agent_id,
        status,
        type_glob: field("type"),
        since,
        until,
        id,
        after_seq: None,
        before_seq,
        limit,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use lobster_shared::ids::AgentId;

    use super::*;

    #[test]
    fn filters_become_queries_and_bad_ones_say_why() {
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let q = query_of(
            &f(&[("status", "failed"), ("type", "push*"), ("agent", "")]),
            5,
        )
        .unwrap()
        .unwrap();
        assert_eq!(q.status, Some(EventStatus::Failed));
        assert_eq!(q.type_glob.as_deref(), Some("push*"));
        assert_eq!(q.agent_id, None);
        let since = query_of(&f(&[("since", "2h")]), 5)
            .unwrap()
            .unwrap()
            .since
            .unwrap();
        assert!((crate::store::now_ms() - since - 7_200_000).abs() < 5_000);
        assert!(query_of(&f(&[("since", "yesterday-ish")]), 5).is_err());
        assert!(query_of(&f(&[("status", "lost")]), 5).is_err());
        assert_eq!(
            query_of(&f(&[("before", "42")]), 5)
                .unwrap()
                .unwrap()
                .before_seq,
            Some(42)
        );
        assert!(query_of(&f(&[("before", "x")]), 5).is_err());
        let at = query_of(&f(&[("until", "2026-12-04T10:00:00Z")]), 5)
            .unwrap()
            .unwrap()
            .until;
        assert_eq!(at, Some(1_796_378_400_000));
        // Ids no agent or event can have match nothing; other errors
        // still say why.
        assert!(query_of(&f(&[("agent", "nobody")]), 5).unwrap().is_none());
        assert!(query_of(&f(&[("id", "evt_x")]), 5).unwrap().is_none());
        assert!(query_of(&f(&[("agent", "nobody"), ("status", "lost")]), 5).is_err());
        let agent = AgentId::generate();
        let q = query_of(&f(&[("agent", agent.as_str())]), 5)
            .unwrap()
            .unwrap();
        assert_eq!(q.agent_id, Some(agent));
    }
}
