//! Runs the real binaries (built by cargo for the workspace) and drives them in tmux.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// Where cargo put this test's sibling binaries: target/<profile>.
///
/// `cargo test --workspace` builds earshotd and earshot for their own
/// packages' integration tests, in the same profile, before any test runs.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

pub fn bin(name: &str) -> String {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} was not built; run `cargo build --workspace --bins` (or `cargo test --workspace`) first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port on 127.0.0.1")
}

/// A private tmux server with named windows, killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new(name: &str, width: u16, height: u16) -> Tmux {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "tmux is needed for the terminal tests and was not found; install it with `apt-get install tmux`");
        let t = Tmux {
            socket: format!("earshot-e2e-{name}-{}", std::process::id()),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let status = t
            .cmd()
            .args([
                "new-session",
                "-d",
                "-x",
                &w,
                "-y",
                &h,
                "-s",
                "e2e",
                "-n",
                "shell",
            ])
            .status()
            .expect("running tmux new-session");
        assert!(status.success(), "tmux new-session failed");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-f", "/dev/null", "-L", &self.socket])
            .env_remove("TMUX");
        c
    }

    /// Opens a window named `window` running `args` (kept open after exit).
    pub fn run(&self, window: &str, args: &[&str]) {
        let quoted: Vec<String> = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let script = format!("{}; echo EXITED $?; sleep 600", quoted.join(" "));
        let status = self
            .cmd()
            .args([
                "new-window",
                "-d",
                "-t",
                "e2e",
                "-n",
                window,
                "sh",
                "-c",
                &script,
            ])
            .status()
            .expect("running tmux new-window");
        assert!(status.success());
    }

    pub fn kill_window(&self, window: &str) {
        let _ = self
            .cmd()
            .args(["kill-window", "-t", &format!("e2e:{window}")])
            .status();
    }

    pub fn send(&self, window: &str, key: &str) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", &format!("e2e:{window}"), key])
            .status()
            .expect("running tmux send-keys");
        assert!(status.success());
    }

    pub fn capture(&self, window: &str) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &format!("e2e:{window}")])
            .output()
            .expect("running tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls a window until `pred` holds; panics with the screen after `timeout`.
    pub fn wait_for(
        &self,
        window: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture(window);
            if pred(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; screen of {window}:\n{screen}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}
