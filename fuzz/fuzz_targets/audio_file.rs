//! Any bytes as an audio file (the name hints the format, as a path's
//! extension does): decoding gives audio or an error, never a panic, and
//! never more memory than a bounded read needs.
#![no_main]

use earshot_device::capture::file::FileSource;
use earshot_device::capture::{AudioSource, Read};
use earshot_device::Shutdown;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = ["x.wav", "x.mp3", "x.flac", "x.ogg", "x"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let Ok(mut src) = FileSource::from_bytes(name, bytes.to_vec()) else {
        return;
    };
    let (mut out, never) = (Vec::new(), Shutdown::new());
    for _ in 0..64 {
        if !matches!(src.read(&mut out, &never), Ok(Read::Audio)) {
            break;
        }
    }
});
