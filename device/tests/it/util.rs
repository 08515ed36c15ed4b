//! Helpers shared by the integration tests (in the manner of ripgrep's tests/util.rs).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `earshotd` built for these tests, blind to an installed
/// /etc/earshot/earshot.toml (an empty $EARSHOT_CONFIG means no config).
pub fn earshotd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_earshotd"));
    cmd.env("EARSHOT_LOG", "info")
        .env("EARSHOT_CONFIG", "")
        .env_remove("XDG_RUNTIME_DIR");
    cmd
}

/// Repository root (the workspace).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped model directory (its id is the one line of models/SHIPPED).
pub fn model_dir() -> PathBuf {
    repo().join("models").join(shipped_id())
}

/// The shipped model's id.
pub fn shipped_id() -> String {
    std::fs::read_to_string(repo().join("models/SHIPPED"))
        .expect("models/SHIPPED names the shipped model")
        .trim()
        .to_string()
}

/// `../shared/data` beside the repository, as in CI; fails loudly if absent.
pub fn shared_data() -> PathBuf {
    let dir = repo().join("../shared/data");
    assert!(
        dir.join("soundtracks/audio").is_dir(),
        "{} is missing: the end-to-end tests need the Soundtracks clips in ../shared/data \
         beside the repository (as CI lays them out)",
        dir.display()
    );
    dir
}

/// The readings in NDJSON output (the hello line left out), parsed.
pub fn readings(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.contains("\"type\":\"reading\""))
        .map(|l| serde_json::from_str(l).expect("a reading line is JSON"))
        .collect()
}

/// `earshotd analyze FILE --json`, which must succeed: its report.
pub fn analyze_json(path: &Path) -> serde_json::Value {
    let out = run(
        earshotd().arg("analyze").arg(path).arg("--json"),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("analyze --json writes JSON")
}

/// Runs to completion with a time limit; panics on timeout.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    run_with(cmd, Stdio::piped(), Stdio::piped(), limit).0
}

/// [`run`] with `stdout` and `stderr` as given (a pipe is captured), and
/// how long it took.
pub fn run_with(
    cmd: &mut Command,
    stdout: Stdio,
    stderr: Stdio,
    limit: Duration,
) -> (Output, Duration) {
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn earshotd");
    let pid = child.id().to_string();
    // wait_with_output drains both pipes while it waits, so a chatty child never blocks
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => (out.expect("output"), start.elapsed()),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("earshotd did not finish within {limit:?}");
        }
    }
}

/// A failing run: non-zero exit, no panic, the message on stderr containing all of `needles`.
pub fn assert_clean_failure(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr:\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panicked:\n{stderr}");
    assert!(
        stderr.contains("earshotd: error: "),
        "no error line:\n{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{stderr}");
    }
}

/// A running daemon whose stdout lines and stderr lines arrive on channels.
pub struct Daemon {
    child: Child,
    pub stdout: Receiver<String>,
    stderr_lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn spawn(cmd: &mut Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn earshotd");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            stdout: rx,
            stderr_lines: lines,
        }
    }

    /// The daemon's process id (to signal it or change its limits).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr_lines.lock().unwrap().join("\n")
    }

    /// Waits until a stderr line contains `needle`; returns that line.
    pub fn wait_stderr(&mut self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .stderr_lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "earshotd exited ({status}) before logging {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < limit,
                "no {needle:?} on stderr within {limit:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Next stdout line within `limit`.
    pub fn line(&self, limit: Duration) -> String {
        self.stdout
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("no stdout line within {limit:?} ({e}):\n{}", self.stderr()))
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(&pid)
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// SIGTERM, then the exit status (graceful shutdown within 10 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("earshotd ignored SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a mono 16-bit WAV of `seconds` of synthetic music-like sound.
pub fn write_wav(path: &Path, rate: u32, seconds: f32) {
    let n = (rate as f32 * seconds) as usize;
    let mut data = Vec::with_capacity(44 + 2 * n);
    let byte_rate = rate * 2;
    data.extend_from_slice(b"RIFF");
    data.extend_from_slice(&(36 + 2 * n as u32).to_le_bytes());
    data.extend_from_slice(b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    data.extend_from_slice(&1u16.to_le_bytes()); // PCM
    data.extend_from_slice(&1u16.to_le_bytes()); // mono
    data.extend_from_slice(&rate.to_le_bytes());
    data.extend_from_slice(&byte_rate.to_le_bytes());
    data.extend_from_slice(&2u16.to_le_bytes());
    data.extend_from_slice(&16u16.to_le_bytes());
    data.extend_from_slice(b"data");
    data.extend_from_slice(&(2 * n as u32).to_le_bytes());
    for i in 0..n {
        let t = i as f32 / rate as f32;
        let f = [220.0, 277.2, 329.6][(t as usize / 2) % 3];
        let env = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 2.0 * t).sin().abs();
        let x = 0.3
            * env
            * ((2.0 * std::f32::consts::PI * f * t).sin()
                + 0.3 * (2.0 * std::f32::consts::PI * 3.0 * f * t).sin());
        data.extend_from_slice(&((x * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, data).expect("write wav");
}

/// Copies the shipped model into `dir` for tampering.
pub fn copy_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["metadata.json", "model.onnx", "model.int8.onnx"] {
        std::fs::copy(model_dir().join(f), dir.join(f)).unwrap();
    }
}

/// Rewrites metadata.json in `dir` through `edit`.
pub fn edit_metadata(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("metadata.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
}

/// sha256 of a file, hex.
pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(std::fs::read(path).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}
