//! Bad input: a clear message naming the file (or device) and the fix, exit
//! code 1, never a panic.

use std::time::Duration;

use super::util::{
    assert_clean_failure, copy_model, earshotd, edit_metadata, readings, repo, run, sha256,
    write_wav,
};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn missing_audio_file() {
    let out = run(earshotd().args(["analyze", "/nonexistent/clip.mp3"]), LIMIT);
    assert_clean_failure(
        &out,
        &[
            "cannot open audio file /nonexistent/clip.mp3",
            "check the path",
        ],
    );
    let out = run(
        earshotd().args(["--file", "/nonexistent/clip.wav", "--no-server", "--stdout"]),
        LIMIT,
    );
    assert_clean_failure(&out, &["cannot open audio file /nonexistent/clip.wav"]);
}

#[test]
fn unreadable_audio_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noise.mp3");
    std::fs::write(
        &path,
        (0..50_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let out = run(earshotd().arg("analyze").arg(&path), LIMIT);
    assert_clean_failure(
        &out,
        &[
            &path.display().to_string(),
            "earshotd reads wav, flac, mp3 and ogg",
        ],
    );
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let out = run(earshotd().arg("analyze").arg(&empty), LIMIT);
    assert_clean_failure(
        &out,
        &[&empty.display().to_string(), "not a readable audio file"],
    );
}

#[test]
fn audio_file_too_short_for_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("short.wav");
    write_wav(&wav, 48000, 1.0);
    let out = run(earshotd().arg("analyze").arg(&wav), LIMIT);
    assert_clean_failure(
        &out,
        &[&wav.display().to_string(), "too short", "at least 2.07 s"],
    );
}

#[test]
fn unknown_device() {
    let out = run(
        earshotd().args(["--device", "No Such Microphone", "--no-server", "--stdout"]),
        LIMIT,
    );
    assert_clean_failure(
        &out,
        &[
            "no input device named \"No Such Microphone\"",
            "earshotd devices",
        ],
    );
}

#[test]
fn model_directory_missing() {
    let out = run(
        earshotd().args(["analyze", "x.wav", "--model", "/nonexistent/model"]),
        LIMIT,
    );
    assert_clean_failure(
        &out,
        &[
            "model file /nonexistent/model/metadata.json",
            "python -m earshot_train export",
        ],
    );
}

#[test]
fn model_file_missing() {
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    std::fs::remove_file(dir.path().join("model.int8.onnx")).unwrap();
    let out = run(
        earshotd()
            .args(["--demo", "--stdout", "--no-server", "--int8", "--model"])
            .arg(dir.path()),
        LIMIT,
    );
    assert_clean_failure(
        &out,
        &[
            &dir.path().join("model.int8.onnx").display().to_string(),
            "No such file",
        ],
    );
}

#[test]
fn model_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    let onnx = dir.path().join("model.onnx");
    std::fs::write(&onnx, b"this is not a protobuf, just text").unwrap();
    // the manifest's checksum catches it first
    let out = run_demo_with_model(dir.path());
    assert_clean_failure(
        &out,
        &[&onnx.display().to_string(), "sha256", "different exports"],
    );
    // with a matching checksum, the parser does
    let sum = sha256(&onnx);
    edit_metadata(dir.path(), |m| {
        m["files"]["model.onnx"]["sha256"] = sum.into()
    });
    let out = run_demo_with_model(dir.path());
    assert_clean_failure(
        &out,
        &[&onnx.display().to_string(), "not a usable ONNX model"],
    );
}

#[test]
fn model_of_the_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    let onnx = dir.path().join("model.onnx");
    std::fs::copy(repo().join("device/tests/fixtures/wrong_bands.onnx"), &onnx).unwrap();
    let sum = sha256(&onnx);
    edit_metadata(dir.path(), |m| {
        m["files"]["model.onnx"]["sha256"] = sum.into()
    });
    let out = run_demo_with_model(dir.path());
    assert_clean_failure(
        &out,
        &[
            &onnx.display().to_string(),
            "expects 150 bands per frame, the front end gives 137",
        ],
    );
}

#[test]
fn metadata_that_does_not_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    edit_metadata(dir.path(), |m| {
        let b = m["head"]["mid_bias"][0].as_f64().unwrap();
        m["head"]["mid_bias"][0] = (b + 0.25).into();
    });
    let out = run_demo_with_model(dir.path());
    assert_clean_failure(
        &out,
        &[
            "metadata.json does not describe this network",
            "different exports",
        ],
    );

    copy_model(dir.path());
    edit_metadata(dir.path(), |m| m["frontend"]["n_bands"] = 128.into());
    let out = run_demo_with_model(dir.path());
    assert_clean_failure(
        &out,
        &[
            &dir.path().join("metadata.json").display().to_string(),
            "front end",
        ],
    );

    copy_model(dir.path());
    std::fs::write(dir.path().join("metadata.json"), b"{\"model_id\": 3").unwrap();
    let out = run_demo_with_model(dir.path());
    assert_clean_failure(&out, &["model metadata", "metadata.json"]);
}

#[test]
fn config_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        "[analysis]\nhop_ms = 1000\n\n[server]\nhots = \"127.0.0.1\"\n",
    )
    .unwrap();
    let out = run(earshotd().arg("--config").arg(&cfg), LIMIT);
    assert_clean_failure(
        &out,
        &[
            &format!("{}:5:1: unknown field `hots`", cfg.display()),
            "expected one of",
        ],
    );
    std::fs::write(&cfg, "[analysis]\nsilence_dbfs = 10\n").unwrap();
    let out = run(earshotd().arg("--config").arg(&cfg), LIMIT);
    assert_clean_failure(
        &out,
        &[&format!("{}:2:1: silence_dbfs = 10", cfg.display())],
    );
    let out = run(
        earshotd().args(["--config", "/nonexistent/earshot.toml"]),
        LIMIT,
    );
    assert_clean_failure(&out, &["reading config /nonexistent/earshot.toml"]);
}

/// The demo through the model in `dir`, to stdout only: a model error surfaces at load.
fn run_demo_with_model(dir: &std::path::Path) -> std::process::Output {
    run(
        earshotd()
            .args(["--demo", "--stdout", "--no-server", "--model"])
            .arg(dir),
        LIMIT,
    )
}

#[test]
fn check_config_reports_ok_or_where_it_is_wrong() {
    let shipped = repo().join("deploy/earshot.toml");
    let out = run(
        earshotd().args(["check-config", "--config"]).arg(&shipped),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("{}: ok", shipped.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("outputs  stream server (tcp 127.0.0.1:7878"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        "[server]\ntcp = \"127.0.0.1:7878\"\nclient_queue = -1\n",
    )
    .unwrap();
    let out = run(
        earshotd().args(["check-config", "--config"]).arg(&cfg),
        LIMIT,
    );
    assert_clean_failure(&out, &[&format!("{}:3", cfg.display())]);
    // nothing named, $EARSHOT_CONFIG empty: nothing to check, and it says how to name one
    let out = run(earshotd().arg("check-config"), LIMIT);
    assert_clean_failure(&out, &["no config to check", "--config FILE"]);
}

#[test]
fn earshot_config_names_the_config_when_no_flag_does() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        "[server]\nenabled = false\n[stdout]\nenabled = true\n",
    )
    .unwrap();
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, 22050, 12.0);
    let out = run(
        earshotd()
            .env("EARSHOT_CONFIG", &cfg)
            .arg("run")
            .arg("--file")
            .arg(&wav),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("config {}", cfg.display())),
        "{stderr}"
    );
    assert!(
        !readings(&out.stdout).is_empty(),
        "the config's [stdout] took effect:\n{stderr}"
    );
}
