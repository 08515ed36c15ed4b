//! The README's main job, as a person sees it: the daemon on the demo signal and
//! the console in a real terminal (tmux, 80x24). Issue 5: live values change;
//! killing the daemon shows "disconnected", restarting it brings the console back;
//! the History view gets its answer from the daemon.

mod util;

use std::time::Duration;

use util::{bin, free_port, Tmux};

const EMOTIONS: [&str; 8] = [
    "valence", "energy", "tension", "anger", "fear", "happy", "sad", "tender",
];

/// The gauge rows of the overview ("valence ███ 0.60 ↑ ..."), the part that moves.
fn emotion_rows(screen: &str) -> Vec<String> {
    screen
        .lines()
        .map(|l| l.chars().take(48).collect::<String>()) // the left panel
        .filter(|l| EMOTIONS.iter().any(|e| l.contains(&format!("{e} "))) && l.contains('.'))
        .collect()
}

#[test]
fn console_shows_live_demo_and_survives_a_daemon_restart() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("earshot-e2e-{port}.log"));
    let log = log.to_string_lossy().into_owned();
    let sock = std::env::temp_dir().join(format!("earshot-e2e-{port}.sock"));
    let sock = sock.to_string_lossy().into_owned();
    let earshotd = bin("earshotd");
    let daemon = [
        earshotd.as_str(),
        "run",
        "--demo",
        "--listen",
        &addr,
        "--socket",
        &sock,
        "--log-file",
        &log,
    ];
    let tmux = Tmux::new("live", 80, 24);
    tmux.run("daemon", &daemon);
    tmux.run("console", &[&bin("earshot"), "--connect", &addr]);

    let first = tmux.wait_for(
        "console",
        "live emotion values",
        Duration::from_secs(60),
        |s| s.contains("live") && emotion_rows(s).len() == 8,
    );
    let before = emotion_rows(&first);
    let after = tmux.wait_for(
        "console",
        "the values to move",
        Duration::from_secs(40),
        |s| {
            let rows = emotion_rows(s);
            rows.len() == 8 && rows != before
        },
    );
    let id = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SHIPPED"),
    )
    .expect("models/SHIPPED names the shipped model");
    assert!(
        after.contains(&format!("model {}", id.trim())),
        "header names the model:\n{after}"
    );

    // The daemon stops (SIGTERM, as systemd or Ctrl-C would stop it; SIGHUP reloads its config).
    // (a closed tmux window no longer stops it either, so the end of the test stops it too)
    let stop_daemon = || {
        std::process::Command::new("pkill")
            // anchored: the `sh -c` that runs it has the same words later in its command line
            .args([
                "-TERM",
                "-f",
                &format!("^{earshotd} run --demo --listen {addr}"),
            ])
            .status()
            .expect("running pkill")
            .success()
    };
    assert!(stop_daemon(), "no earshotd with --socket {sock} to stop");
    tmux.wait_for(
        "daemon",
        "the daemon to stop",
        Duration::from_secs(10),
        |s| s.contains("EXITED 0"),
    );
    tmux.kill_window("daemon");
    let lost = tmux.wait_for("console", "disconnected", Duration::from_secs(15), |s| {
        s.contains("disconnected")
    });
    assert_eq!(
        emotion_rows(&lost).len(),
        8,
        "last values stay on screen, marked stale:\n{lost}"
    );

    tmux.run("daemon", &daemon);
    tmux.wait_for(
        "console",
        "recovery after restart",
        Duration::from_secs(60),
        |s| s.contains("live") && !s.contains("disconnected"),
    );
    // View 4 asks the daemon for its history over the stream; the demo daemon keeps none.
    tmux.send("console", "4");
    tmux.wait_for(
        "console",
        "the daemon's answer about its history",
        Duration::from_secs(20),
        |s| s.contains("History · last 12 h") && s.contains("keeps no history"),
    );
    tmux.send("console", "q");
    tmux.wait_for(
        "console",
        "the console to quit cleanly",
        Duration::from_secs(10),
        |s| s.contains("EXITED 0"),
    );
    assert!(stop_daemon(), "the restarted earshotd is running");
}
