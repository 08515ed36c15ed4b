//! `earshotd analyze` against the Python pipeline on Soundtracks clips.
//!
//! The fixture comes from `device/tests/fixtures/soundtracks_reference.py`
//! (soundfile decode, reference front end, 313-frame windows every 31 frames,
//! f32 ONNX in onnxruntime, mean over windows). Tolerance: 1e-3 absolute on
//! the 0..1 scales (measured: < 4e-5 with edge-v4; the float32 FFT and the mp3 decoders
//! differ slightly).

use std::time::Duration;

use earshot_protocol::{Emotions, MidLevel};
use serde::Deserialize;

use super::util::{
    analyze_json, copy_model, earshotd, edit_metadata, model_dir, repo, run, sha256, shared_data,
    write_wav,
};

const TOLERANCE: f64 = 1e-3;

#[derive(Deserialize)]
struct Fixture {
    model_sha256: String,
    clips: std::collections::BTreeMap<String, Clip>,
}

#[derive(Deserialize)]
struct Clip {
    samples: u64,
    windows: usize,
    mid_level: Vec<f64>,
    emotions: Vec<f64>,
}

fn fixture() -> Fixture {
    let path = repo().join("device/tests/fixtures/soundtracks_reference.json");
    let f: Fixture = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        f.model_sha256,
        sha256(&model_dir().join("model.onnx")),
        "{} was made with another model.onnx; regenerate it: \
         python3 device/tests/fixtures/soundtracks_reference.py",
        path.display()
    );
    f
}

#[test]
fn soundtracks_clips_read_as_in_python() {
    let data = shared_data();
    for (id, want) in fixture().clips {
        let clip = data.join(format!("soundtracks/audio/{id}.mp3"));
        let report = analyze_json(&clip);
        let samples = (report["seconds"].as_f64().unwrap() * 22050.0).round() as u64;
        assert_eq!(
            samples, want.samples,
            "{id}: decoded length differs from soundfile's"
        );
        let summary = &report["summary"];
        assert_eq!(
            summary["windows"].as_u64().unwrap() as usize,
            want.windows,
            "{id}: windows"
        );
        let mid: MidLevel<f64> = serde_json::from_value(summary["mid_level"].clone()).unwrap();
        let emo: Emotions<f64> = serde_json::from_value(summary["emotions"].clone()).unwrap();
        let got = [
            ("mid_level", mid.to_array().to_vec()),
            ("emotions", emo.to_array().to_vec()),
        ];
        for ((key, got), want) in got.iter().zip([&want.mid_level, &want.emotions]) {
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() < TOLERANCE,
                    "{id} {key}[{i}]: earshotd {g}, python {w}"
                );
            }
        }
        assert_eq!(report["windows"].as_array().unwrap().len(), want.windows);
        assert_eq!(report["readings"].as_array().unwrap().len(), want.windows);
    }
}

#[test]
fn analyze_csv_has_a_row_per_window_and_a_mean() {
    let clip = shared_data().join("soundtracks/audio/001.mp3");
    let out = run(
        earshotd().arg("analyze").arg(&clip).arg("--csv"),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("start_s,end_s,state,level_dbfs,melodiousness,"));
    assert_eq!(lines[0].split(',').count(), 4 + 7 + 8);
    let windows = fixture().clips["001"].windows;
    assert_eq!(lines.len(), 1 + windows + 1);
    assert!(lines[1].starts_with("0.000,"), "{}", lines[1]);
    assert!(lines.last().unwrap().starts_with(",,mean,"));
    // default output: a readable summary
    let out = run(
        earshotd().arg("analyze").arg(&clip),
        Duration::from_secs(120),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("emotions (0..1)") && text.contains("tender"),
        "{text}"
    );
}

/// `precision = "auto"` runs int8 only where the model's metadata says it was
/// measured faster; a fixed precision wins; a CPU class the daemon does not
/// know is a metadata error, not a silent f32.
#[test]
fn auto_precision_follows_the_cpus_the_model_was_measured_on() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_model(&model);
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, 22050, 12.0);
    let this_arch = std::env::consts::ARCH;
    let other = if this_arch == "x86_64" {
        "aarch64+dotprod"
    } else {
        "x86_64"
    };
    let analyze = |extra: &[&str]| {
        let out = run(
            earshotd()
                .arg("analyze")
                .arg(&wav)
                .arg("--json")
                .arg("--model")
                .arg(&model)
                .args(extra),
            Duration::from_secs(120),
        );
        (
            out.status.success(),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).ok(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let precision = |extra: &[&str]| {
        let (ok, report, stderr) = analyze(extra);
        assert!(ok, "{stderr}");
        let r = report.expect("analyze --json writes JSON");
        (
            r["precision"].as_str().unwrap().to_string(),
            r["precision_reason"].as_str().unwrap().to_string(),
        )
    };

    edit_metadata(&model, |m| {
        m["int8_faster_on"] = serde_json::json!([this_arch])
    });
    let (p, why) = precision(&[]);
    assert_eq!(p, "int8", "{why}");
    assert!(why.contains(this_arch), "{why}");
    assert_eq!(precision(&["--precision", "f32"]).0, "f32");

    edit_metadata(&model, |m| m["int8_faster_on"] = serde_json::json!([other]));
    let (p, why) = precision(&[]);
    assert_eq!(p, "f32", "{why}");
    assert!(why.contains(&format!("only on {other}")), "{why}");
    assert_eq!(precision(&["--int8"]).0, "int8");

    edit_metadata(&model, |m| {
        m["int8_faster_on"] = serde_json::json!(["arm64"])
    });
    let (ok, _, stderr) = analyze(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("int8_faster_on") && stderr.contains("\"arm64\""),
        "{stderr}"
    );
}
