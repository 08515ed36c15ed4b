//! Input faults on a real daemon (issue 19, "Faults"): the input is a named
//! pipe (FIFO) fed by the test, the way `arecord`, `ffmpeg` or a network
//! audio receiver would feed it. Its writer leaving is an input lost mid-
//! stream, a writer that holds the pipe open and says nothing is a stalled
//! input; both go through the daemon's real capture path (the file source
//! on its capture thread, under the supervisor). A disk that fills up under
//! the history is `ulimit -f` (RLIMIT_FSIZE) on the daemon.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use earshot_protocol::{decode, InputState, Message, Reading, SourceState};

use super::util::{assert_clean_failure, earshotd, readings, run, write_wav, Daemon};

fn mkfifo(dir: &Path) -> PathBuf {
    let path = dir.join("input.wav");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(status.success(), "mkfifo {}", path.display());
    path
}

/// A wav of `seconds` of music-like sound, as bytes.
fn music(dir: &Path, seconds: f32) -> Vec<u8> {
    let path = dir.join(format!("music-{seconds}.wav"));
    write_wav(&path, 22050, seconds);
    std::fs::read(&path).unwrap()
}

/// `wav` with its header claiming far more audio than it holds, as a
/// recorder streaming into a pipe writes it (it cannot know the length).
fn endless(mut wav: Vec<u8>) -> Vec<u8> {
    wav[4..8].copy_from_slice(&0x7fff_0024u32.to_le_bytes());
    wav[40..44].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    wav
}

/// A writer that opens `fifo` (waiting for the daemon to open it too),
/// says so on the returned channel, writes `bytes`, then holds the pipe open
/// until `hold` is dropped or sends, and closes it.
fn writer(
    fifo: &Path,
    bytes: Vec<u8>,
    hold: Option<Receiver<()>>,
) -> (Receiver<Instant>, JoinHandle<()>) {
    let (opened, rx) = mpsc::channel();
    let fifo = fifo.to_path_buf();
    let t = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open the pipe for writing");
        let _ = opened.send(Instant::now());
        // The daemon may be gone (a test that failed): not this thread's panic.
        let _ = f.write_all(&bytes);
        if let Some(hold) = hold {
            let _ = hold.recv_timeout(Duration::from_secs(60));
        }
    });
    (rx, t)
}

/// A stream subscriber on the daemon's unix socket: its readings, decoded.
fn subscribe(sock: &Path) -> Receiver<Reading> {
    let stream = UnixStream::connect(sock).expect("connect to the daemon's socket");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Message::Reading(r) = decode(&line).expect("stream lines decode") {
                if tx.send(*r).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Readings until one satisfies `want`; returns it and when it came.
fn until(
    rx: &Receiver<Reading>,
    d: &Daemon,
    limit: Duration,
    mut want: impl FnMut(&Reading) -> bool,
) -> (Reading, Instant) {
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        let r = rx.recv_timeout(left).unwrap_or_else(|e| {
            panic!(
                "no such reading within {limit:?} ({e}); log:\n{}",
                d.stderr()
            )
        });
        if want(&r) {
            return (r, Instant::now());
        }
    }
}

#[test]
fn input_lost_mid_stream_is_reported_and_resumes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let sock = dir.path().join("earshot.sock");
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"file\"\npath = {fifo:?}\nrealtime = true\n\n\
             [server]\ntcp = \"\"\nunix_socket = {sock:?}\n"
        ),
    )
    .unwrap();
    // The daemon opens its input before it serves: the writer comes first.
    let (_, first) = writer(&fifo, music(dir.path(), 5.0), None);
    let mut d = Daemon::spawn(earshotd().arg("--config").arg(&cfg));
    d.wait_stderr("listening on unix", Duration::from_secs(60));
    let rx = subscribe(&sock);

    let (r, _) = until(&rx, &d, Duration::from_secs(20), |r| {
        r.state == InputState::Music
    });
    assert_eq!(r.health.input.state, SourceState::Ok);
    assert_eq!(r.health.input.restarts, 0);

    // The writer goes away: the next reading says there is no input, at
    // once (within a hop), and readings go on without audio.
    let mut last_ok = (r, Instant::now());
    let (lost, lost_at) = until(&rx, &d, Duration::from_secs(20), |r| {
        if r.health.input.state == SourceState::Ok {
            last_ok = (r.clone(), Instant::now());
            return false;
        }
        true
    });
    first.join().unwrap();
    let detect = lost_at.duration_since(last_ok.1);
    eprintln!("last reading with audio -> first reading with no input: {detect:?}");
    assert_eq!(lost.health.input.state, SourceState::NoInput, "{lost:?}");
    assert_eq!(lost.seq, last_ok.0.seq + 1, "no reading is skipped");
    assert_eq!(lost.health.input.restarts, 1);
    assert!(detect < Duration::from_millis(2500), "{detect:?}");
    let mut quiet = vec![lost];
    while quiet.len() < 4 {
        let r = rx
            .recv_timeout(Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("the daemon went silent ({e}):\n{}", d.stderr()));
        quiet.push(r);
    }
    for w in quiet.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        let gap = w[1].time_ms - w[0].time_ms;
        assert!((800..=1400).contains(&gap), "a reading every hop: {gap} ms");
    }
    for r in &quiet {
        assert_eq!(r.health.input.state, SourceState::NoInput);
        assert_eq!(r.state, InputState::Silence, "no claim about the room");
        assert!(r.analysis.is_none());
        assert_eq!(r.level_dbfs, -120.0);
        assert_eq!(r.stream_ms, quiet[0].stream_ms, "no audio was heard");
    }
    let last_quiet = quiet.last().unwrap();
    assert!(
        last_quiet.health.input.no_audio_s >= 2,
        "{:?}",
        last_quiet.health.input
    );

    // A new writer: the daemon hears it without being restarted.
    let (opened, second) = writer(&fifo, music(dir.path(), 5.0), None);
    let opened = opened.recv_timeout(Duration::from_secs(30)).unwrap();
    let (back, back_at) = until(&rx, &d, Duration::from_secs(20), |r| {
        r.health.input.state == SourceState::Ok
    });
    let resume = back_at.duration_since(opened);
    eprintln!("new writer -> first reading with input ok: {resume:?}");
    assert!(resume < Duration::from_secs(3), "{resume:?}");
    assert_eq!(back.health.input.restarts, 1);
    assert_eq!(back.health.reconnects, 1);
    until(&rx, &d, Duration::from_secs(20), |r| {
        r.state == InputState::Music
    });
    assert!(d.stderr().contains("lost: the stream in the pipe ended"));
    assert!(d.stderr().contains("is back after"));
    drop(rx);
    let status = d.terminate();
    assert!(status.success(), "{status}");
    second.join().unwrap();
}

#[test]
fn a_silent_input_is_restarted_then_the_daemon_gives_up_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"file\"\npath = {fifo:?}\nrealtime = true\n\n\
             [watchdog]\nstall_s = 1\nmax_restarts = 1\n\n\
             [server]\nenabled = false\n[stdout]\nenabled = true\n"
        ),
    )
    .unwrap();
    // 3 s of music, then the writer keeps the pipe open and sends nothing.
    let (release, hold) = mpsc::channel();
    let (_, w) = writer(&fifo, endless(music(dir.path(), 3.0)), Some(hold));
    let started = Instant::now();
    let out = run(
        earshotd().arg("run").arg("--config").arg(&cfg),
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    let _ = release.send(());
    w.join().unwrap();
    eprintln!("start -> exit: {took:?}");
    assert_clean_failure(&out, &["failed 2 times within 600 s", "no audio for 1 s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("earshotd: error:").count(),
        1,
        "one error line:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("restarting the capture").count(),
        2,
        "the alarm once per stall:\n{stderr}"
    );
    let rs = readings(&out.stdout);
    let state = |r: &serde_json::Value| r["health"]["input"]["state"].as_str().unwrap().to_string();
    assert!(rs.iter().any(|r| r["state"] == "music" && state(r) == "ok"));
    let first_quiet = rs
        .iter()
        .position(|r| state(r) == "no_input")
        .expect("no_input readings");
    assert!(rs[first_quiet..].iter().all(|r| r["analysis"].is_null()));
    // The subscribers' last word: the input failed, after two restarts.
    let last = rs.last().unwrap();
    assert_eq!(state(last), "failed", "{last}");
    assert_eq!(last["health"]["input"]["restarts"], 2);
    // Two stalls of 1 s after 3 s of audio, not a minute of trying.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// The history's state in a reading line.
fn history_state(r: &serde_json::Value) -> Option<(String, u64)> {
    r["health"]["outputs"]
        .as_array()?
        .iter()
        .find(|o| o["name"] == "history")
        .map(|o| {
            (
                o["state"].as_str().unwrap_or_default().to_string(),
                o["errors"].as_u64().unwrap_or_default(),
            )
        })
}

#[test]
fn a_full_disk_under_the_history_is_reported_and_readings_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nenabled = false\n[stdout]\nenabled = true\n[history]\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    // A full disk is an error from write(2), not a signal: SIGXFSZ, which
    // RLIMIT_FSIZE raises first, is ignored (an ignored signal stays so
    // across exec).
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_earshotd"))
        .args(["run", "--demo", "--config"])
        .arg(&cfg)
        .env("EARSHOT_LOG", "info")
        .env_remove("XDG_RUNTIME_DIR");
    let d = Daemon::spawn(&mut cmd);
    let first = d.line(Duration::from_secs(60));
    assert!(first.contains("\"type\":\"hello\""), "{first}");
    let r: serde_json::Value = serde_json::from_str(&d.line(Duration::from_secs(30))).unwrap();
    assert_eq!(history_state(&r).map(|s| s.0).as_deref(), Some("starting"));
    // The history is open; from now on no file of the daemon's may grow.
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", d.pid()))
        .arg("--fsize=0:0")
        .status()
        .expect("prlimit (util-linux) runs: apt-get install util-linux");
    assert!(status.success(), "prlimit --pid {} failed", d.pid());
    let limited = Instant::now();

    // The history writes once a minute: its first write fails within 61 s.
    let mut seq = r["seq"].as_u64().unwrap();
    let (state, errors) = loop {
        let line = d.line(Duration::from_secs(5));
        let r: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(r["seq"].as_u64(), Some(seq + 1), "no reading is skipped");
        seq += 1;
        let (state, errors) = history_state(&r).expect("history in health");
        if state != "ok" && state != "starting" {
            break (state, errors);
        }
        assert!(
            limited.elapsed() < Duration::from_secs(75),
            "the history still reads {state} a minute after the disk filled:\n{}",
            d.stderr()
        );
    };
    eprintln!(
        "disk full -> history {state} in health after {:?}",
        limited.elapsed()
    );
    let log = d.stderr();
    assert!(
        log.contains("history") && log.contains("disk I/O error"),
        "{log}"
    );
    // The history is a secondary output and a disk may be cleared: the sink
    // retries (keeping the minute it could not write), says so, counts its errors,
    // and the readings go on to the other outputs, without a log line each.
    match state.as_str() {
        "retrying" | "down" => {
            assert!(errors > 0);
            for _ in 0..3 {
                let r: serde_json::Value =
                    serde_json::from_str(&d.line(Duration::from_secs(3))).unwrap();
                assert_eq!(r["seq"].as_u64(), Some(seq + 1));
                seq += 1;
                let (state, more) = history_state(&r).unwrap();
                assert_ne!(state, "ok", "the disk is still full");
                assert!(more >= errors);
            }
            let warnings = d.stderr().matches("sink history:").count();
            assert_eq!(warnings, 1, "rate-limited:\n{}", d.stderr());
            d.terminate();
        }
        other => panic!("history state {other}: a full disk must not stop the readings"),
    }
}
