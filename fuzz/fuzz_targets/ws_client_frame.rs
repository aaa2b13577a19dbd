//! A WebSocket text frame from a client, parsed as the gateway does (`ws/requests.rs`): any
//! bytes must give a frame or an error, never a panic; a frame that parses survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natter_proto::ClientFrame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
        let again = serde_json::to_string(&frame).expect("a parsed frame serializes");
        serde_json::from_str::<ClientFrame>(&again).expect("a serialized frame parses");
    }
});
