//! A bus payload from NATS, decoded as every node does (`natter_bus::codec`): any bytes give an
//! event or an error, never a panic; an event that decodes encodes to bytes that decode to it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use natter_bus::codec::{decode_event, encode_event};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = decode_event(&Bytes::copy_from_slice(data)) {
        let encoded = encode_event(&event);
        let again = decode_event(&encoded).expect("an encoded event decodes");
        assert_eq!(encode_event(&again), encoded, "the round trip is stable");
    }
});
