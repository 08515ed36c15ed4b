//! Every line a console, recorder or the daemon's request reader may be
//! handed: the decoders never panic, and a message that decodes and holds
//! only finite numbers survives re-encoding unchanged.
#![no_main]

use earshot_protocol::{decode, decode_auth, decode_request, encode, encode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = decode(&text) {
        // JSON has no infinities: 1e39 decodes as f32 infinity and encodes
        // as null, which does not decode; everything else must round-trip.
        let line = encode(&m);
        if let Ok(again) = decode(&line) {
            assert_eq!(again, m, "{line}");
        }
    }
    if let Ok(r) = decode_request(&text) {
        assert_eq!(decode_request(&encode_request(&r)).ok(), Some(r));
    }
    let _ = decode_auth(&text);
});
