//! The real `earshot` binary in a real terminal (tmux), against a fake daemon
//! on loopback and against recordings.

mod util;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use util::{earshot_bin, fixture, FakeDaemon, Tmux};

const WAIT: Duration = Duration::from_secs(15);

/// The emotion rows of the Overview (the lines that carry the gauges).
fn emotion_rows(screen: &str) -> Vec<String> {
    screen
        .lines()
        .filter(|l| {
            let head: String = l.chars().skip(2).take(8).collect();
            ["valence ", "energy  ", "tension "].contains(&head.as_str())
        })
        .map(|l| l.chars().take(40).collect())
        .collect()
}

#[test]
fn live_values_change_then_disconnect_then_recover() {
    let seq = Arc::new(AtomicU64::new(0));
    let daemon = FakeDaemon::start(0, Arc::clone(&seq));
    let port = daemon.port;
    let addr = format!("127.0.0.1:{port}");
    let tmux = Tmux::start("live", &[earshot_bin(), "--connect", &addr], 80, 24);

    let first = tmux.wait_for("live readings", WAIT, |s| {
        s.contains("● live") && emotion_rows(s).len() == 3
    });
    assert!(first.contains("edge-1a2b3c4d"), "{first}");
    let second = tmux.wait_for("values to change", WAIT, |s| {
        s.contains("● live")
            && emotion_rows(s).len() == 3
            && emotion_rows(s) != emotion_rows(&first)
    });
    assert_ne!(emotion_rows(&first), emotion_rows(&second));

    daemon.stop();
    let lost = tmux.wait_for("disconnected", WAIT, |s| s.contains("disconnected"));
    assert!(
        lost.contains("stale"),
        "old values are marked stale:\n{lost}"
    );
    assert!(lost.contains("valence"), "old values stay shown:\n{lost}");

    let daemon = FakeDaemon::start(port, Arc::clone(&seq));
    let back = tmux.wait_for("recovery", WAIT, |s| {
        s.contains("● live") && !s.contains("stale")
    });
    tmux.wait_for("values to change after recovery", WAIT, |s| {
        s.contains("● live") && emotion_rows(s).len() == 3 && emotion_rows(s) != emotion_rows(&back)
    });

    tmux.send("3");
    let tcp = format!("tcp {addr}");
    tmux.wait_for("health view", WAIT, |s| {
        s.contains("connects    2") && s.contains(&tcp)
    });
    tmux.send("q");
    tmux.wait_for("a clean exit", WAIT, |s| s.contains("EXITED 0"));
    daemon.stop();
}

#[test]
fn starts_without_a_daemon_and_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let tmux = Tmux::start("nodaemon", &[earshot_bin(), "--connect", &addr], 80, 24);
    let screen = tmux.wait_for("the no-daemon message", WAIT, |s| {
        s.contains("No earshotd at")
    });
    assert!(screen.contains("disconnected"), "{screen}");
    tmux.send("?");
    tmux.wait_for("help", WAIT, |s| s.contains("select emotion"));
    tmux.send("q");
    tmux.wait_for("a clean exit", WAIT, |s| s.contains("EXITED 0"));
}

#[test]
fn replay_of_the_fixture() {
    let path = fixture();
    let path = path.to_str().expect("utf-8 path");
    let tmux = Tmux::start(
        "replay",
        &[earshot_bin(), "--replay", path, "--speed", "4"],
        80,
        24,
    );
    let end = tmux.wait_for("the end of the replay", WAIT, |s| {
        s.contains("replay finished")
    });
    assert!(end.contains("edge-1a2b3c4d"), "{end}");
    assert!(
        end.contains("silence"),
        "the last reading is silence:\n{end}"
    );
    tmux.send("2");
    // the whole view, not its title alone: a capture can land mid-redraw
    tmux.wait_for("the explain view of the last music reading", WAIT, |s| {
        s.contains("Explain · tension")
            && s.contains("showing the last music reading (#12)")
            && s.contains("dissonance (-0.05)")
    });
    tmux.send("q");
    tmux.wait_for("a clean exit", WAIT, |s| s.contains("EXITED 0"));
}

#[test]
fn replay_names_a_bad_line_by_file_and_line() {
    let dir = util::temp_dir("badline");
    let path = dir.join("bad.ndjson");
    let mut text = std::fs::read_to_string(fixture()).expect("reading the fixture");
    text.push_str("{\"v\":1,\"type\":\"reading\",\"seq\":\n");
    std::fs::write(&path, text).expect("writing the recording");
    let path_str = path.to_str().expect("utf-8 path");

    let tmux = Tmux::start(
        "badline",
        &[earshot_bin(), "--replay", path_str, "--speed", "8"],
        100,
        30,
    );
    let screen = tmux.wait_for("the end of the replay", WAIT, |s| {
        s.contains("replay finished")
    });
    assert!(screen.contains("1 skipped"), "{screen}");
    tmux.send("3");
    tmux.wait_for("the warning", WAIT, |s| {
        s.contains("bad.ndjson:4: not a JSON object")
    });
    tmux.send("q");
    let exit = tmux.wait_for("a clean exit", WAIT, |s| s.contains("EXITED 0"));
    assert!(
        exit.contains(&format!("earshot: skipped {path_str}:4:")),
        "{exit}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Not a test: captures each view for docs/img (run by host/tests/render_docs.sh).
#[test]
#[ignore = "writes documentation captures; run host/tests/render_docs.sh"]
fn render_docs_captures() {
    let out =
        std::env::var("EARSHOT_CAPTURE_DIR").unwrap_or_else(|_| "target/console-captures".into());
    std::fs::create_dir_all(&out).expect("creating the capture dir");
    let seq = Arc::new(AtomicU64::new(0));
    let daemon = FakeDaemon::start(0, seq);
    let addr = format!("127.0.0.1:{}", daemon.port);
    let tmux = Tmux::start(
        "docs",
        &[earshot_bin(), "--connect", &addr, "--colors", "256"],
        80,
        24,
    );
    // Let history build up for a while so sparklines have something to show.
    tmux.wait_for("live readings", WAIT, |s| s.contains("● live"));
    std::thread::sleep(Duration::from_secs(20));
    for (key, name) in [("1", "overview"), ("2", "explain"), ("3", "health")] {
        tmux.send(key);
        std::thread::sleep(Duration::from_millis(500));
        std::fs::write(format!("{out}/console-{name}.ansi"), tmux.capture_ansi())
            .expect("writing a capture");
    }
    tmux.send("q");
    daemon.stop();
}
