//! Readings hold when the same music is captured differently: the short,
//! daemon-side version of `python -m earshot_train robustness`.
//!
//! A Soundtracks clip and a 4q-dev clip are decoded, changed as a file format,
//! a microphone gain or a noise floor would change them, written as 16-bit
//! wavs and read by `earshotd analyze`; every window's reading is compared
//! with the reading of the decoded clip as float wav. The limits are the
//! issue's targets for the shipped model (mean absolute change per window:
//! emotions 0.03, mid-level 0.05); the Python suite measures more conditions
//! on more clips (models/README.md, robustness table).

use std::path::Path;

use earshot_device::capture::file::FileSource;

use super::util::{analyze_json, shared_data};

const EMOTIONS_LIMIT: f64 = 0.03;
const MID_LEVEL_LIMIT: f64 = 0.05;

/// Mono 22050 Hz samples as a wav: 16-bit PCM, or 32-bit float.
fn write_wav(path: &Path, samples: &[f32], float: bool) {
    let (format, bits): (u16, u16) = if float { (3, 32) } else { (1, 16) };
    let bytes = u32::from(bits / 8);
    let data_len = samples.len() as u32 * bytes;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&22050u32.to_le_bytes());
    out.extend_from_slice(&(22050 * bytes).to_le_bytes());
    out.extend_from_slice(&(bits / 8).to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &s in samples {
        if float {
            out.extend_from_slice(&s.to_le_bytes());
        } else {
            let q = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            out.extend_from_slice(&q.to_le_bytes());
        }
    }
    std::fs::write(path, out).unwrap();
}

/// Per-window readings of `earshotd analyze --json`: (mid-level, emotions) rows.
fn readings(path: &Path) -> Vec<(Vec<f64>, Vec<f64>)> {
    let report = analyze_json(path);
    let values = |v: &serde_json::Value| -> Vec<f64> {
        v.as_object()
            .unwrap()
            .values()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    report["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let a = &r["analysis"]["raw"];
            (values(&a["mid_level"]), values(&a["emotions"]))
        })
        .collect()
}

fn mean_abs_change(a: &[(Vec<f64>, Vec<f64>)], b: &[(Vec<f64>, Vec<f64>)]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "window counts differ");
    let (mut mid, mut emo, mut n) = (0.0, 0.0, 0.0);
    for ((ma, ea), (mb, eb)) in a.iter().zip(b) {
        mid += ma.iter().zip(mb).map(|(x, y)| (x - y).abs()).sum::<f64>() / ma.len() as f64;
        emo += ea.iter().zip(eb).map(|(x, y)| (x - y).abs()).sum::<f64>() / ea.len() as f64;
        n += 1.0;
    }
    (mid / n, emo / n)
}

/// Deterministic white noise at `dbfs` RMS.
fn noise(n: usize, dbfs: f32) -> impl Iterator<Item = f32> {
    let amp = 10f32.powf(dbfs / 20.0) * 3f32.sqrt(); // uniform: RMS = amp / sqrt(3)
    let mut state = 0x9e37_79b9_u32;
    (0..n).map(move |_| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        amp * (2.0 * (state as f32 / u32::MAX as f32) - 1.0)
    })
}

#[test]
fn readings_hold_through_format_gain_and_noise_floor() {
    let data = shared_data();
    let dir = tempfile::tempdir().unwrap();
    let clips = [
        data.join("soundtracks/audio/137.mp3"),
        data.join("4q-dev/audio/Q2_MT0000011975.mp3"),
    ];
    for clip in &clips {
        let x = FileSource::read_all(clip).unwrap();
        let reference = dir.path().join("float.wav");
        write_wav(&reference, &x, true);
        let clean = readings(&reference);
        assert!(
            clean.len() >= 3,
            "{}: {} windows",
            clip.display(),
            clean.len()
        );
        let conditions: [(&str, Vec<f32>); 3] = [
            ("16-bit wav", x.clone()),
            ("gain -20 dB", x.iter().map(|v| v * 0.1).collect()),
            (
                "noise floor -60 dBFS",
                x.iter()
                    .zip(noise(x.len(), -60.0))
                    .map(|(v, n)| v + n)
                    .collect(),
            ),
        ];
        for (name, samples) in conditions {
            let path = dir.path().join("changed.wav");
            write_wav(&path, &samples, false);
            let (mid, emo) = mean_abs_change(&clean, &readings(&path));
            eprintln!(
                "{}: {name}: emotions {emo:.4}, mid-level {mid:.4}",
                clip.display()
            );
            assert!(
                emo <= EMOTIONS_LIMIT && mid <= MID_LEVEL_LIMIT,
                "{}: {name} moved the readings by {emo:.3} (emotions) / {mid:.3} (mid-level)",
                clip.display()
            );
        }
    }
}
