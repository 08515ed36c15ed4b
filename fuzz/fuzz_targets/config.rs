//! Any config text: parsing and validation end in settings or an error
//! naming the place, never a panic.
#![no_main]

use earshot_device::config::Loaded;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Loaded::parse(text, "fuzz.toml") {
        Ok(loaded) => {
            if let Err(e) = loaded.validate() {
                let _ = e.to_string();
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml")),
    }
});
