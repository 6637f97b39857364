//! The relay decodes every text frame an agent sends with
//! `AgentMessage::from_json`: arbitrary bytes must give a message or an
//! error, never a panic, and a decoded message must survive a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lobster_shared::wire::AgentMessage;

fuzz_target!(|data: &[u8]| {
    // A WebSocket text frame is UTF-8 by the protocol; tungstenite rejects
    // the rest before the decoder sees it. Lossy keeps every input useful.
    let text = String::from_utf8_lossy(data);
    if let Ok(message) = AgentMessage::from_json(&text) {
        let again = AgentMessage::from_json(&message.to_json()).expect("re-encoded frame decodes");
        assert_eq!(again, message);
    }
});
