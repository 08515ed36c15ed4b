//! Helpers for tests that run the real `earshot`: a tmux session to run it in
//! and a fake daemon that serves hello + readings on loopback.

#![allow(dead_code)] // each test file uses a different part

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use earshot_protocol::{encode_line, Hello, Message};

/// The hop of the fake daemon: short, so that tests see changes quickly.
pub const HOP_MS: u32 = 200;

pub fn earshot_bin() -> &'static str {
    env!("CARGO_BIN_EXE_earshot")
}

pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/fixtures/v1.ndjson")
}

/// A fresh directory under the system temp dir, removed by the caller if wanted.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("earshot-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}

/// A tmux server of its own (`-L`), with one detached session running a command.
pub struct Tmux {
    socket: String,
}

fn tmux_available() {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "tmux is needed for the terminal tests and was not found; install it with `apt-get install tmux`"
    );
}

impl Tmux {
    /// Runs `args` (the earshot binary first) in a `width`x`height` session. The
    /// shell prints `EXITED <code>` afterwards and keeps the pane open, so a
    /// crash stays visible in captures.
    pub fn start(name: &str, args: &[&str], width: u16, height: u16) -> Tmux {
        tmux_available();
        let socket = format!("earshot-test-{name}-{}", std::process::id());
        let quoted: Vec<String> = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let script = format!("{}; echo EXITED $?; sleep 600", quoted.join(" "));
        let t = Tmux { socket };
        let status = t
            .cmd()
            .args([
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .args(["-s", "earshot", "sh", "-c", &script])
            .status()
            .expect("running tmux new-session");
        assert!(status.success(), "tmux new-session failed: {status}");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-f", "/dev/null", "-L", &self.socket]);
        c.env_remove("TMUX");
        c
    }

    /// The visible screen as plain text.
    pub fn capture(&self) -> String {
        self.capture_with(&[])
    }

    /// The visible screen with ANSI colour escapes.
    pub fn capture_ansi(&self) -> String {
        self.capture_with(&["-e"])
    }

    fn capture_with(&self, extra: &[&str]) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "earshot"])
            .args(extra)
            .output()
            .expect("running tmux capture-pane");
        assert!(
            out.status.success(),
            "capture-pane: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types keys (tmux key names, e.g. "2", "Down", "q").
    pub fn send(&self, key: &str) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "earshot", key])
            .status()
            .expect("running tmux send-keys");
        assert!(status.success());
    }

    /// Polls the screen until `pred` holds; panics with the last screen after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            if start.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {what}; screen:\n{screen}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// A stand-in for earshotd's stream server: hello on connect, then one
/// reading per [`HOP_MS`] to every client, with seq continuing across restarts.
pub struct FakeDaemon {
    pub port: u16,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

pub fn fake_hello() -> Message {
    let Message::Hello(h) = earshot_host::demo::hello() else {
        unreachable!("demo::hello is a hello")
    };
    Message::Hello(Hello {
        hop_ms: HOP_MS,
        source: "fake".into(),
        ..h
    })
}

impl FakeDaemon {
    /// Listens on 127.0.0.1:`port` (0: any free port), retrying while the port is busy.
    pub fn start(port: u16, first_seq: Arc<AtomicU64>) -> FakeDaemon {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    eprintln!("bind 127.0.0.1:{port}: {e}; retrying");
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot bind 127.0.0.1:{port}: {e}"),
            }
        };
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = thread::spawn(move || serve(listener, &stop2, &first_seq));
        FakeDaemon {
            port,
            stop,
            handle: Some(handle),
        }
    }

    /// Closes every connection and the listener.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("fake daemon thread");
        }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(listener: TcpListener, stop: &AtomicBool, seq: &AtomicU64) {
    let mut clients: Vec<TcpStream> = Vec::new();
    let hello = encode_line(&fake_hello());
    let mut next = Instant::now();
    // Bounded: a test that forgets to stop the server still ends it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        while let Ok((mut stream, _)) = listener.accept() {
            if stream.write_all(hello.as_bytes()).is_ok() {
                clients.push(stream);
            }
        }
        if Instant::now() >= next {
            next += Duration::from_millis(u64::from(HOP_MS));
            let n = seq.fetch_add(1, Ordering::SeqCst);
            let line = encode_line(&earshot_host::demo::reading_message(n));
            clients.retain_mut(|c| c.write_all(line.as_bytes()).is_ok());
        }
        thread::sleep(Duration::from_millis(20));
    }
    for c in clients {
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
}
