//! Renders docs/img/lights-<preset>.png: what each preset's zones show over
//! the four demo passages (calm, happy, tense, sad; 88 s), then 12 s of
//! silence (the idle look). The readings are the daemon's own (`analyze`,
//! smoothed as published) fed once a second through the real engine at 40
//! frames a second, so the picture is what an RGB fixture would show.
//!
//!     cargo run -p earshot-device --example lights_strip
//!
//! Each zone is a band (top to bottom in the preset's zone order: e.g. wash,
//! accent), then a UV band where the preset drives UV; the thin rows under
//! them mark the passages. No dependencies: the PNG is written by hand
//! (stored deflate blocks).

use std::path::Path;

use earshot_device::config::{AnalysisSettings, Precision};
use earshot_device::lights::engine::{Engine, Input};
use earshot_device::lights::scene::preset;
use earshot_device::lights::LightsConfig;

const PX_PER_S: usize = 8;
const BAND_H: usize = 48;
const MARK_H: usize = 6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let analysis = AnalysisSettings {
        hop_ms: 1000,
        window_ms: None,
        smoothing_ms: 3000,
        silence_dbfs: -60.0,
    };
    let mut inputs = Vec::new();
    let mut passage = Vec::new();
    for (i, clip) in ["1-calm.mp3", "2-happy.mp3", "3-tense.mp3", "4-sad.mp3"]
        .iter()
        .enumerate()
    {
        let path = root.join("device/assets/demo").join(clip);
        let report = earshot_device::analyze(&path, None, Precision::F32, &analysis)?;
        for r in &report.readings {
            inputs.push(Input::from_reading(r));
            passage.push(i);
        }
    }
    for _ in 0..12 {
        inputs.push(Input::Quiet);
        passage.push(4);
    }
    for name in ["ambient_shop", "bar", "club"] {
        let p = preset(name).ok_or("unknown preset")?;
        // The preset as `[lights] preset = NAME` configures it, defaults and all.
        let mut cfg = LightsConfig {
            enabled: true,
            preset: name.into(),
            ..LightsConfig::default()
        };
        cfg.wled.push(toml::from_str(&format!(
            "target = \"127.0.0.1\"\nzone = \"{}\"\nleds = 1\n",
            p.mapping.zones[0].name
        ))?);
        let settings = cfg.validate_text()?.ok_or("lights off")?;
        let zones = settings.mapping.zones.len();
        let uv = settings.mapping.zones.iter().any(|z| z.uv.is_some());
        let mut engine = Engine::new(settings.behaviour.clone(), settings.mapping.clone(), 0.0);
        let seconds = inputs.len();
        let width = seconds * PX_PER_S;
        let bands = zones + usize::from(uv);
        let height = bands * BAND_H + MARK_H;
        let mut img = vec![0u8; width * height * 3];
        let frames_per_px = 40 / PX_PER_S;
        let mut frame = 0usize;
        for (s, input) in inputs.iter().enumerate() {
            engine.on_input(*input, s as f64);
            for _ in 0..40 {
                let t = frame as f64 / 40.0;
                let looks = engine.tick(t).to_vec();
                if frame.is_multiple_of(frames_per_px) {
                    let x = frame / frames_per_px;
                    for (z, l) in looks.iter().enumerate() {
                        let rgb = l.colour.map(|c| (c * l.intensity * 255.0).round() as u8);
                        fill(&mut img, width, x, z * BAND_H, BAND_H, rgb);
                    }
                    if uv {
                        let level = looks.iter().map(|l| l.uv).fold(0.0, f32::max);
                        let v = (level * 255.0).round() as u8;
                        fill(&mut img, width, x, zones * BAND_H, BAND_H, [v / 2, 0, v]);
                    }
                    let mark = [
                        [90, 160, 120],
                        [230, 200, 60],
                        [200, 60, 60],
                        [80, 100, 200],
                        [40, 40, 40],
                    ];
                    fill(&mut img, width, x, bands * BAND_H, MARK_H, mark[passage[s]]);
                }
                frame += 1;
            }
        }
        let out = root.join(format!("docs/img/lights-{name}.png"));
        std::fs::write(&out, png(width, height, &img))?;
        println!("{} ({width}x{height}, {seconds} s)", out.display());
    }
    Ok(())
}

fn fill(img: &mut [u8], width: usize, x: usize, y0: usize, h: usize, rgb: [u8; 3]) {
    for y in y0..y0 + h {
        let i = (y * width + x) * 3;
        img[i..i + 3].copy_from_slice(&rgb);
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// An 8-bit RGB PNG with uncompressed (stored) deflate blocks.
fn png(width: usize, height: usize, rgb: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(height * (width * 3 + 1));
    for row in rgb.chunks(width * 3) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let mut blocks = raw.chunks(65_535).peekable();
    while let Some(block) = blocks.next() {
        z.push(u8::from(blocks.peek().is_none()));
        let n = block.len() as u16;
        z.extend_from_slice(&n.to_le_bytes());
        z.extend_from_slice(&(!n).to_le_bytes());
        z.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for x in &raw {
        a = (a + u32::from(*x)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}
