use std::collections::HashMap;

use super::*;

const ULID: &str = "01KBQ3M0Z6X8Y9A7B5C4D3E2F1";

#[test]
fn generated_ids_parse_back() {
    for _ in 0..200 {
        let event = EventId::generate();
        assert_eq!(EventId::parse(event.as_str()), Ok(event));
        let agent = AgentId::generate();
        assert_eq!(AgentId::parse(agent.as_str()), Ok(agent));
        let session = SessionId::generate();
        assert_eq!(SessionId::parse(session.as_str()), Ok(session));
        let instance = InstanceId::generate();
        assert_eq!(InstanceId::parse(instance.as_str()), Ok(instance));
        let relay = RelayId::generate();
        assert_eq!(RelayId::parse(relay.as_str()), Ok(relay));
    }
}

#[test]
fn ulid_ids_sort_in_creation_order() {
    let ids: Vec<EventId> = (0..2000).map(|_| EventId::generate()).collect();
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
    }
}

#[test]
fn ulid_ids_check_prefix_length_and_alphabet() {
    assert!(EventId::parse(&format!("evt_{ULID}")).is_ok());
    assert!(EventId::parse(&format!("evt_7{}", &ULID[1..])).is_ok());
    let bad = [
        String::new(),
        "evt_".to_owned(),
        ULID.to_owned(),
        format!("agt_{ULID}"),
        format!("EVT_{ULID}"),
        format!("evt_{}", ULID.to_lowercase()),
        format!("evt_{}", &ULID[1..]),
        format!("evt_{ULID}0"),
        format!("evt_8{}", &ULID[1..]),
        format!("evt_{}U", &ULID[1..]),
        format!("evt_{}I", &ULID[1..]),
        format!(" evt_{}", &ULID[1..]),
        format!("evt_{}é", &ULID[2..]),
        "x".repeat(10_000),
    ];
    for text in &bad {
        assert!(EventId::parse(text).is_err(), "accepted {text:?}");
    }
    assert!(AgentId::parse(&format!("agt_{ULID}")).is_ok());
    assert!(AgentId::parse(&format!("ses_{ULID}")).is_err());
    assert!(SessionId::parse(&format!("ses_{ULID}")).is_ok());
    assert!(SessionId::parse(&format!("evt_{ULID}")).is_err());
    assert!(InstanceId::parse(&format!("ins_{ULID}")).is_ok());
}

#[test]
fn relay_ids_are_lowercase_base32_of_fixed_length() {
    let good = "rly_0123456789abcdefghjkmnpqrs";
    assert_eq!(good.len(), RELAY_ID_LEN);
    assert!(RelayId::parse(good).is_ok());
    for bad in [
        "",
        "rly_",
        "rly_0123456789abcdefghjkmnpqr",
        "rly_0123456789abcdefghjkmnpqrst",
        "rly_0123456789ABCDEFGHJKMNPQRS",
        "rly_0123456789abcdefghjkmnpqri",
        "rly_0123456789abcdefghjkmnpqr_",
        "agt_0123456789abcdefghjkmnpqrs",
        "rly_0123456789abcdefghjkmnpqé",
    ] {
        assert!(RelayId::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn workspace_names_are_short_lowercase_slugs() {
    for good in ["default", "acme", "a", "team-7", "-", &"x".repeat(64)] {
        assert!(WorkspaceName::parse(good).is_ok(), "{good}");
    }
    for bad in ["", "Acme", "a b", "a_b", "ü", &"x".repeat(65), "a/b"] {
        assert!(WorkspaceName::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(WorkspaceName::default_workspace().as_str(), "default");
}

#[test]
fn errors_say_what_was_expected_and_cut_long_input() {
    let err = EventId::parse(&"x".repeat(500)).unwrap_err();
    assert_eq!(err.kind, "an event id");
    assert_eq!(err.reason, "wrong prefix");
    assert_eq!(err.text.len(), 80);
    let err = AgentId::parse("agt_1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"agt_1\" is not an agent id: wrong length"
    );
}

#[test]
fn serde_is_the_bare_string_and_deserializing_checks() {
    let id = EventId::parse(&format!("evt_{ULID}")).unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, format!("\"evt_{ULID}\""));
    assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
    assert!(serde_json::from_str::<EventId>("\"evt_1\"").is_err());
    assert!(serde_json::from_str::<WorkspaceName>("\"Acme\"").is_err());
    assert!(serde_json::from_str::<EventId>("5").is_err());
}

#[test]
fn maps_keyed_by_ids_answer_str_lookups() {
    let agent = AgentId::generate();
    let mut map = HashMap::new();
    map.insert(agent.clone(), 1);
    assert_eq!(map.get(agent.as_str()), Some(&1));
    assert_eq!(agent.to_string(), agent.as_str());
    assert_eq!(format!("{agent:?}"), format!("{:?}", agent.as_str()));
    assert_eq!(agent, agent.as_str());
}

#[test]
fn stored_values_are_taken_unchecked() {
    assert_eq!(AgentId::from_stored("agt_1").as_str(), "agt_1");
    assert_eq!(String::from(EventId::from_stored("x")), "x");
}
