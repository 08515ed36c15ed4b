//! Writes the built-in demo music (or, with `synthetic`, the synthetic test
//! signal) to a WAV file, to listen to it or to run `earshotd analyze` on it:
//! `cargo run --example demo_wav -- demo.wav 80 [synthetic]`.

use std::io::Write;

use earshot_device::capture::demo::Demo;
use earshot_device::capture::synth::Synth;
use earshot_device::capture::{AudioSource, Read};
use earshot_device::frontend::SAMPLE_RATE_HZ;
use earshot_device::Shutdown;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "demo.wav".into());
    let seconds: f32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(80.0);
    let mut source: Box<dyn AudioSource> = match args.next().as_deref() {
        Some("synthetic") => Box::new(Synth::new()),
        None => Box::new(Demo::open()?),
        Some(other) => anyhow::bail!("unknown source {other:?}; say `synthetic` or nothing"),
    };
    let shutdown = Shutdown::new();
    let mut samples = Vec::new();
    while (samples.len() as f32) < seconds * SAMPLE_RATE_HZ as f32 {
        if !matches!(source.read(&mut samples, &shutdown)?, Read::Audio) {
            break;
        }
    }
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut f = std::fs::File::create(&path)?;
    let sr = SAMPLE_RATE_HZ;
    f.write_all(b"RIFF")?;
    f.write_all(&(36 + data.len() as u32).to_le_bytes())?;
    f.write_all(b"WAVEfmt ")?;
    f.write_all(&16u32.to_le_bytes())?;
    f.write_all(&1u16.to_le_bytes())?; // PCM
    f.write_all(&1u16.to_le_bytes())?; // mono
    f.write_all(&sr.to_le_bytes())?;
    f.write_all(&(sr * 2).to_le_bytes())?;
    f.write_all(&2u16.to_le_bytes())?;
    f.write_all(&16u16.to_le_bytes())?;
    f.write_all(b"data")?;
    f.write_all(&(data.len() as u32).to_le_bytes())?;
    f.write_all(&data)?;
    println!("wrote {path}: {:.1} s", samples.len() as f32 / sr as f32);
    Ok(())
}
