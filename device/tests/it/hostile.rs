//! Faults and hostile input (issue 19): the real `earshotd`, real files and
//! sockets. Each test names the finding it keeps fixed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use earshot_protocol::{decode, Message};

use super::util::{assert_clean_failure, earshotd, run, run_with, write_wav, Daemon};

const LIMIT: Duration = Duration::from_secs(60);

/// The demo with only a unix socket at `sock` (no TCP, so tests never collide on 7878).
fn demo_on_socket(sock: &Path) -> Command {
    let mut cmd = earshotd();
    cmd.args(["--demo", "--listen", ""])
        .arg("--socket")
        .arg(sock);
    cmd
}

/// A WAV header that declares `rate`, then `samples` of 16-bit silence.
fn write_wav_declaring(path: &Path, rate: u32, samples: u32) {
    let mut data = b"RIFF".to_vec();
    data.extend_from_slice(&(36 + 2 * samples).to_le_bytes());
    data.extend_from_slice(b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    data.extend_from_slice(&1u16.to_le_bytes()); // PCM
    data.extend_from_slice(&1u16.to_le_bytes()); // mono
    data.extend_from_slice(&rate.to_le_bytes());
    data.extend_from_slice(&rate.wrapping_mul(2).to_le_bytes());
    data.extend_from_slice(&2u16.to_le_bytes());
    data.extend_from_slice(&16u16.to_le_bytes());
    data.extend_from_slice(b"data");
    data.extend_from_slice(&(2 * samples).to_le_bytes());
    data.resize(data.len() + 2 * samples as usize, 0);
    std::fs::write(path, data).unwrap();
}

/// A 32-bit float WAV at 22050 Hz holding `samples`.
fn write_float_wav(path: &Path, samples: &[f32]) {
    let n = samples.len() as u32;
    let mut data = b"RIFF".to_vec();
    data.extend_from_slice(&(36 + 4 * n).to_le_bytes());
    data.extend_from_slice(b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    data.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    data.extend_from_slice(&1u16.to_le_bytes());
    data.extend_from_slice(&22050u32.to_le_bytes());
    data.extend_from_slice(&(22050u32 * 4).to_le_bytes());
    data.extend_from_slice(&4u16.to_le_bytes());
    data.extend_from_slice(&32u16.to_le_bytes());
    data.extend_from_slice(b"data");
    data.extend_from_slice(&(4 * n).to_le_bytes());
    for s in samples {
        data.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

fn tone(seconds: f32) -> impl Iterator<Item = f32> {
    (0..(seconds * 22050.0) as usize).map(|i| {
        let t = i as f32 / 22050.0;
        0.3 * ((2.0 * std::f32::consts::PI * 220.0 * t).sin()
            + 0.5 * (2.0 * std::f32::consts::PI * 330.0 * t).sin())
    })
}

// ---------------------------------------------------------------- 1: data loss

/// 19.1: `--socket` naming a user's file fails and leaves the file alone
/// (it used to be deleted at start and again at shutdown).
#[test]
fn socket_path_naming_a_file_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "data\n").unwrap();
    let out = run(&mut demo_on_socket(&notes), LIMIT);
    assert_clean_failure(
        &out,
        &[
            &format!("unix socket {}", notes.display()),
            "not a socket",
            "only ever replaces a stale socket",
        ],
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "data\n");
}

/// 19.1: a stale socket is replaced, and removed at shutdown.
#[test]
fn stale_socket_is_replaced_then_removed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("earshot.sock");
    drop(UnixListener::bind(&sock).unwrap()); // left behind, nobody listening
    let mut d = Daemon::spawn(&mut demo_on_socket(&sock));
    d.wait_stderr("listening on unix", LIMIT);
    assert!(d.stderr().contains("removed the stale socket"));
    let mut hello = String::new();
    BufReader::new(UnixStream::connect(&sock).unwrap())
        .read_line(&mut hello)
        .unwrap();
    assert!(matches!(decode(&hello), Ok(Message::Hello(_))), "{hello}");
    assert!(d.terminate().success());
    assert!(!sock.exists(), "the socket is removed at shutdown");
}

/// 19.10: a directory as the socket path gets a hint about directories, not
/// about stale sockets.
#[test]
fn socket_path_naming_a_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut demo_on_socket(dir.path()), LIMIT);
    assert_clean_failure(&out, &["it is a directory", "name a socket file"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("stale"));
    assert!(dir.path().is_dir());
}

/// 19.10: `--socket ""` disables the socket, as `--help` says.
#[test]
fn empty_socket_flag_disables_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("music.wav");
    write_wav(&wav, 22050, 4.0);
    let out = run(
        earshotd()
            .arg("--file")
            .arg(&wav)
            .args(["--stdout", "--listen", "", "--socket", ""]),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"type\":\"reading\""));
}

// ---------------------------------------------------------------- 2: sample rates

/// 19.2: sample rates outside 8-384 kHz are refused with the file's name,
/// by `analyze` and by `run --file` (0 Hz panicked, 1 Hz took 957 MB,
/// 2^31-1 Hz never finished).
#[test]
fn wav_sample_rates_outside_8_to_384_khz_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [0u32, 1, 7_999, 384_001, 2_147_483_647] {
        let wav = dir.path().join(format!("rate{rate}.wav"));
        write_wav_declaring(&wav, rate, 25);
        let needles = [
            wav.display().to_string(),
            format!("sample rate is {rate} Hz"),
            "8 to 384 kHz".to_string(),
        ];
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let out = run(earshotd().arg("analyze").arg(&wav), LIMIT);
        assert_clean_failure(&out, &needles);
        let out = run(
            earshotd()
                .arg("--file")
                .arg(&wav)
                .args(["--stdout", "--no-server"]),
            LIMIT,
        );
        assert_clean_failure(&out, &needles);
        // the same header on a pipe, which cannot be read twice (0 Hz panicked there)
        let piped = Command::new("sh")
            .args(["-c", "exec \"$0\" analyze /dev/stdin < \"$1\""])
            .arg(earshotd().get_program())
            .arg(&wav)
            .env("EARSHOT_CONFIG", "")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_clean_failure(
            &piped,
            &["/dev/stdin", &format!("sample rate is {rate} Hz")],
        );
    }
    // the edges of the range are accepted
    for rate in [8_000u32, 384_000] {
        let wav = dir.path().join(format!("ok{rate}.wav"));
        write_wav(&wav, rate, 3.0);
        let out = run(earshotd().arg("analyze").arg(&wav), LIMIT);
        assert!(
            out.status.success(),
            "{rate} Hz: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------- 4: protocol integrity

/// 19.4: NaN, infinite and huge samples still give valid v1 readings (they
/// were published as `null` and every consumer rejected them), logged once.
#[test]
fn nan_inf_and_huge_samples_give_valid_readings() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("damaged.wav");
    let mut samples: Vec<f32> = tone(3.0).collect();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30] {
        samples.extend(std::iter::repeat_n(bad, 22050));
        samples.extend(tone(1.0));
    }
    write_float_wav(&wav, &samples);
    let out = run(
        earshotd()
            .arg("--file")
            .arg(&wav)
            .args(["--stdout", "--no-server"]),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut readings = 0;
    for line in stdout.lines() {
        match decode(line) {
            Ok(Message::Reading(r)) => {
                readings += 1;
                assert!(r.level_dbfs <= 6.1, "level {} dBFS", r.level_dbfs);
            }
            Ok(Message::Hello(_)) => {}
            Ok(Message::History(_)) => panic!("a history answer nobody asked for: {line}"),
            Err(e) => panic!("invalid v1 line ({e}): {line}"),
        }
    }
    assert!(readings >= 6, "{readings} readings:\n{stderr}");
    assert_eq!(stderr.matches("not numbers (NaN or infinite)").count(), 1);
    assert_eq!(stderr.matches("far beyond full scale").count(), 1);
    let out = run(earshotd().arg("analyze").arg(&wav), LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Found by fuzzing: a 24-byte FLAC whose PICTURE block declares a 4 GiB
/// picture, and the same in an Ogg comment header: symphonia 0.5 allocated
/// the declared size before reading, and where memory is short (here: 2 GiB
/// of address space, as on a 2 GB Pi) earshotd aborted (exit 134). Now the
/// FLAC is a damaged file like any other and the Ogg's audio is read.
#[test]
fn files_declaring_4_gib_of_metadata_cost_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let flac = dir.path().join("cover.flac");
    std::fs::write(
        &flac,
        b"fLaC\x01\0\0\0\x06Q\0\0\xfc\xff\xff\xff\xff\xff\xff\xff\x9e\x9e\x9e\x86",
    )
    .unwrap();
    let analyze_in_2_gib = |file: &Path| {
        run(
            Command::new("prlimit")
                .arg("--as=2147483648")
                .arg(env!("CARGO_BIN_EXE_earshotd"))
                .arg("analyze")
                .arg(file)
                .env("EARSHOT_CONFIG", ""),
            LIMIT,
        )
    };
    let out = analyze_in_2_gib(&flac);
    assert_clean_failure(&out, &["cover.flac", "not a readable audio file"]);
    // made by device/tests/fixtures/tagged_and_hostile.py
    let ogg = super::util::repo().join("device/tests/fixtures/comment_4gib.ogg");
    let out = analyze_in_2_gib(&ogg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}:\n{stderr}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("valence"));
}

// ---------------------------------------------------------------- 5: silent loss

/// 19.5: `--stdout` into a full disk fails at once with one clear error and
/// a non-zero exit (it lost every reading, took 22 s to stop and exited 0).
#[test]
fn stdout_to_a_full_disk_fails_loudly_and_fast() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("music.wav");
    write_wav(&wav, 22050, 20.0);
    let (out, took) = run_with(
        earshotd()
            .arg("--file")
            .arg(&wav)
            .args(["--stdout", "--no-server"]),
        full_disk(),
        Stdio::piped(),
        LIMIT,
    );
    assert_clean_failure(
        &out,
        &["cannot write readings to standard output: No space left on device"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("No space left").count(), 1, "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

fn full_disk() -> Stdio {
    Stdio::from(File::options().write(true).open("/dev/full").unwrap())
}

/// Logs into a full disk (stderr on /dev/full) cost no reading: the daemon
/// used to panic on its first log line (exit 101, nothing published), as
/// tracing-subscriber reports a failed write with eprintln!, which panics.
#[test]
fn logs_to_a_full_disk_cost_no_reading() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("music.wav");
    write_wav(&wav, 22050, 20.0);
    let (out, _) = run_with(
        earshotd()
            .arg("--file")
            .arg(&wav)
            .args(["--stdout", "--no-server"]),
        Stdio::piped(),
        full_disk(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0));
    let readings = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| matches!(decode(l), Ok(Message::Reading(_))))
        .count();
    assert!(readings >= 10, "{readings} readings");
    // and a failure still ends with its exit status, not a panic's 101
    let (out, _) = run_with(
        earshotd().args(["analyze", "/nonexistent/music.wav"]),
        Stdio::piped(),
        full_disk(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1));
}

// ---------------------------------------------------------------- 8: exposure

/// 19.8: beyond the client cap connections are closed at once, with a log line.
#[test]
fn clients_beyond_max_clients_are_turned_away() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        "[server]\ntcp = \"127.0.0.1:0\"\nunix_socket = \"\"\nmax_clients = 2\n",
    )
    .unwrap();
    let mut d = Daemon::spawn(earshotd().args(["--demo", "--config"]).arg(&cfg));
    let line = d.wait_stderr("listening on tcp ", LIMIT);
    let addr: SocketAddr = line.rsplit("tcp ").next().unwrap().trim().parse().unwrap();
    let mut first_lines = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..3 {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        first_lines.push(line);
        keep.push(r);
    }
    assert!(first_lines[0].contains("\"hello\""));
    assert!(first_lines[1].contains("\"hello\""));
    assert_eq!(first_lines[2], "", "the third client gets nothing");
    d.wait_stderr("refused: 2 clients are connected", Duration::from_secs(5));
    assert!(d.terminate().success());
}

/// 19.8: listening beyond loopback is logged as a warning.
#[test]
fn listening_beyond_loopback_warns() {
    let mut d = Daemon::spawn(earshotd().args(["--demo", "--listen", "0.0.0.0:0", "--socket", ""]));
    let warning = d.wait_stderr("beyond this machine", LIMIT);
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("no authentication"), "{warning}");
    assert!(d.terminate().success());
    let mut d =
        Daemon::spawn(earshotd().args(["--demo", "--listen", "127.0.0.1:0", "--socket", ""]));
    d.wait_stderr("listening on tcp", LIMIT);
    assert!(!d.stderr().contains("beyond this machine"));
    assert!(d.terminate().success());
}

// ---------------------------------------------------------------- 9: socket access

/// 19.9: the socket's mode and group come from the config (and flags), so
/// that staff in the daemon's group can connect.
#[test]
fn socket_mode_and_group_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("earshot.sock");
    let gid = std::fs::metadata(dir.path()).unwrap().gid();
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ntcp = \"\"\nunix_socket = {sock:?}\nsocket_mode = \"0660\"\n\
             socket_group = \"{gid}\"\n"
        ),
    )
    .unwrap();
    let mut d = Daemon::spawn(earshotd().args(["--demo", "--config"]).arg(&cfg));
    d.wait_stderr("listening on unix", LIMIT);
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), gid);
    assert!(d.terminate().success());
    // the flag overrides the config
    let mut d = Daemon::spawn(
        earshotd()
            .args(["--demo", "--config"])
            .arg(&cfg)
            .args(["--socket-mode", "0600"]),
    );
    d.wait_stderr("listening on unix", LIMIT);
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert!(d.terminate().success());
    // a group that does not exist is a config error naming the line
    std::fs::write(
        &cfg,
        "[server]\ntcp = \"\"\nsocket_group = \"no-such-group-earshot\"\n",
    )
    .unwrap();
    let out = run(earshotd().args(["--demo", "--config"]).arg(&cfg), LIMIT);
    assert_clean_failure(
        &out,
        &[
            &format!("{}:3:1: socket_group", cfg.display()),
            "no such group",
        ],
    );
}

// ---------------------------------------------------------------- 10: smaller

/// 19.10: an OS error is printed once, not once by the message and again as its cause.
#[test]
fn os_errors_are_printed_once() {
    let out = run(
        earshotd().args(["--config", "/nonexistent/earshot.toml"]),
        LIMIT,
    );
    assert_clean_failure(&out, &["/nonexistent/earshot.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = run(
        earshotd().args(["--demo", "--socket", "", "--listen", &addr]),
        LIMIT,
    );
    assert_clean_failure(&out, &[&format!("tcp {addr}")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "{stderr}"
    );
}

/// 19.10: SIGHUP reloads the config: a bad one is logged and the running one
/// kept, a good one is applied (it used to exit 129 and leave the socket).
#[test]
fn sighup_reloads_the_config_and_keeps_the_old_one_when_bad() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("earshot.sock");
    let cfg = dir.path().join("earshot.toml");
    let write_cfg = |hop_ms: u32| {
        std::fs::write(
            &cfg,
            format!(
                "[analysis]\nhop_ms = {hop_ms}\n\n[server]\ntcp = \"\"\nunix_socket = {sock:?}\n"
            ),
        )
        .unwrap()
    };
    let hello_hop = |line: &str| match decode(line) {
        Ok(Message::Hello(h)) => Some(h.hop_ms),
        _ => None,
    };
    write_cfg(1000);
    let mut d = Daemon::spawn(
        earshotd()
            .args(["--demo", "--stdout", "--config"])
            .arg(&cfg),
    );
    assert_eq!(hello_hop(&d.line(LIMIT)), Some(990));
    d.line(Duration::from_secs(20)); // a first reading
    write_cfg(0);
    d.signal("HUP");
    let error = d.wait_stderr("reloading the config failed", Duration::from_secs(10));
    assert!(
        error.contains(&format!("{}:2:1: hop_ms = 0", cfg.display())),
        "{error}"
    );
    for _ in 0..2 {
        let line = d.line(Duration::from_secs(10));
        assert!(line.contains("\"type\":\"reading\""), "{line}");
    }
    assert!(UnixStream::connect(&sock).is_ok(), "still serving");
    write_cfg(500);
    d.signal("HUP");
    d.wait_stderr("restarting with it", Duration::from_secs(10));
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let line = d.line(Duration::from_secs(20));
        if let Some(hop) = hello_hop(&line) {
            assert_eq!(hop, 511, "the new hop (16 frames)");
            break;
        }
        assert!(Instant::now() < until, "no new hello after the reload");
    }
    assert!(UnixStream::connect(&sock).is_ok(), "serving again");
    assert!(d.terminate().success());
    assert!(!sock.exists());
}

/// 19.10: a constant offset (DC) reads as silence, not music.
#[test]
fn constant_dc_reads_as_silence() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("dc.wav");
    write_float_wav(&wav, &vec![0.5; 22050 * 6]);
    let out = run(
        earshotd()
            .arg("--file")
            .arg(&wav)
            .args(["--stdout", "--no-server"]),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut readings = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Ok(Message::Reading(r)) = decode(line) {
            readings += 1;
            assert_eq!(
                r.state,
                earshot_protocol::InputState::Silence,
                "{} dBFS",
                r.level_dbfs
            );
        }
    }
    assert!(readings >= 3);
}

/// 19.8: with `[server] token_file`, a TCP client gets readings only after
/// sending the token.
#[test]
fn token_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        format!("[server]\ntcp = \"127.0.0.1:0\"\nunix_socket = \"\"\ntoken_file = {token:?}\n"),
    )
    .unwrap();
    let mut d = Daemon::spawn(earshotd().args(["--demo", "--config"]).arg(&cfg));
    let line = d.wait_stderr("listening on tcp ", LIMIT);
    let addr: SocketAddr = line.rsplit("tcp ").next().unwrap().trim().parse().unwrap();
    let first_line = |send: &str| {
        use std::io::Write;
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(send.as_bytes()).unwrap();
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        line
    };
    let good = earshot_protocol::encode_auth("0123456789abcdef0123456789abcdef");
    assert!(matches!(decode(&first_line(&good)), Ok(Message::Hello(_))));
    let wrong = earshot_protocol::encode_auth("0123456789abcdef0123456789abcdeX");
    assert_eq!(first_line(&wrong), "");
    d.wait_stderr("refused: wrong token", Duration::from_secs(5));
    assert!(
        !d.stderr().contains("0123456789abcdef"),
        "the token is never logged"
    );
    assert!(d.terminate().success());
}
