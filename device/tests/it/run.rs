//! `earshotd` running: the demo on stdout, live capture from ALSA's null device, `devices`.

use std::time::Duration;

use earshot_protocol::{decode, InputState, Message, Reading};

use super::util::{earshotd, run, Daemon};

fn readings(d: &Daemon, n: usize) -> (Message, Vec<Reading>) {
    let hello = decode(&d.line(Duration::from_secs(20))).expect("hello decodes");
    let readings = (0..n)
        .map(
            |_| match decode(&d.line(Duration::from_secs(20))).expect("reading decodes") {
                Message::Reading(r) => *r,
                other => panic!("expected a reading, got {other:?}"),
            },
        )
        .collect();
    (hello, readings)
}

/// The README's main command: the demo, readings on stdout that move and explain themselves.
#[test]
fn demo_on_stdout_readings_change_and_decode() {
    let d = Daemon::spawn(earshotd().args(["--demo", "--stdout", "--no-server"]));
    let (hello, rs) = readings(&d, 5);
    let Message::Hello(h) = hello else {
        panic!("first line is not hello: {hello:?}")
    };
    assert_eq!(h.source, "demo");
    assert_eq!(h.hop_ms, 990);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.state, InputState::Music);
        let a = r.analysis.as_ref().expect("music has an analysis");
        for (x, e) in a.explanation.to_array().iter().zip(a.emotions.to_array()) {
            assert_eq!(x.total(), e, "bias + sum(effects) == emotion");
        }
        assert!(r.level_dbfs > -40.0);
    }
    // paced in real time: about one reading per 990 ms of audio
    assert_eq!(rs[4].stream_ms - rs[0].stream_ms, 3959);
    let first = rs[0].analysis.as_ref().unwrap().raw.emotions.to_array();
    let last = rs[4].analysis.as_ref().unwrap().raw.emotions.to_array();
    let moved = first
        .iter()
        .zip(last)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        moved > 1e-3,
        "readings did not change: {first:?} vs {last:?}"
    );
    assert!(d.terminate().success());
}

/// Live capture through cpal: ALSA's `null` capture device delivers zeros
/// (faster than real time): readings say "silence" and claim no emotions.
#[test]
fn live_capture_from_the_alsa_null_device_reads_silence() {
    let d = Daemon::spawn(earshotd().args(["--device", "null", "--stdout", "--no-server"]));
    let (hello, rs) = readings(&d, 4);
    let Message::Hello(h) = hello else {
        panic!("first line is not hello")
    };
    assert!(h.source.starts_with("alsa:"), "{}", h.source);
    for r in &rs {
        assert_eq!(r.state, InputState::Silence);
        assert!(r.analysis.is_none());
        assert_eq!(r.level_dbfs, -120.0);
    }
    assert!(d.terminate().success());
}

#[test]
fn devices_lists_inputs_without_panicking() {
    let out = run(earshotd().arg("devices"), Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[alsa:null]"), "{stdout}");
}
