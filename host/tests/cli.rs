//! The `earshot` binary's behaviour outside a terminal: clear errors, no panics.

mod util;

use std::process::Command;

#[test]
fn missing_recording_is_named() {
    let out = Command::new(util::earshot_bin())
        .args(["--replay", "/nonexistent/evening.ndjson"])
        .output()
        .expect("running earshot");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("opening recording /nonexistent/evening.ndjson"),
        "{err}"
    );
}

#[test]
fn without_a_terminal_it_says_how_to_get_one() {
    let out = Command::new(util::earshot_bin())
        .args(["--replay", util::fixture().to_str().expect("utf-8 path")])
        .output()
        .expect("running earshot");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ssh -t"), "{err}");
}

#[test]
fn bad_flags_are_rejected() {
    let out = Command::new(util::earshot_bin())
        .args(["--colors", "8"])
        .output()
        .expect("running earshot");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--colors"));
}
