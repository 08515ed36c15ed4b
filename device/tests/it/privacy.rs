//! Privacy: whatever earshotd writes or sends holds readings, never audio.
//! One run with every output that carries data (stdout, the stream server with
//! a client, OSC, history) on a real clip; everything that comes out is
//! checked field by field.

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use serde_json::Value;

use super::util::{earshotd, shared_data, Daemon};

/// Every array anywhere in a JSON value: the longest one.
fn longest_array(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len().max(a.iter().map(longest_array).max().unwrap_or(0)),
        Value::Object(m) => m.values().map(longest_array).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn nothing_written_or_sent_carries_audio() {
    let dir = tempfile::tempdir().unwrap();
    let osc = UdpSocket::bind("127.0.0.1:0").unwrap();
    osc.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = dir.path().join("history.sqlite");
    let config = dir.path().join("earshot.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ntcp = \"127.0.0.1:{port}\"\nunix_socket = \"\"\n[stdout]\nenabled = true\n\
             [osc]\ntargets = [\"{}\"]\nexplanation = true\n[history]\npath = {:?}\n",
            osc.local_addr().unwrap(),
            db.display().to_string()
        ),
    )
    .unwrap();
    let clip = shared_data().join("soundtracks/audio/001.mp3");
    let mut daemon = Daemon::spawn(
        earshotd()
            .current_dir(dir.path())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--file")
            .arg(&clip)
            .arg("--realtime"),
    );
    daemon.wait_stderr("stream server listening", Duration::from_secs(60));
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut lines = BufReader::new(client).lines();
    let mut checked = 0;
    for _ in 0..8 {
        let line = lines.next().unwrap().unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(
            longest_array(&v) <= 32,
            "an array longer than 32 numbers: {line}"
        );
        checked += 1;
    }
    let mut datagrams = 0;
    let mut buf = [0u8; 65536];
    while let Ok(n) = osc.recv(&mut buf) {
        // one address and one argument each: at most a few dozen bytes
        assert!(n <= 128, "an OSC datagram of {n} bytes");
        datagrams += 1;
        if datagrams > 500 {
            break;
        }
    }
    assert!(datagrams > 0);
    let mut stdout_lines = 0;
    let written: Vec<String> = daemon.stdout.try_iter().collect();
    assert!(daemon.terminate().success());
    for line in written {
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(longest_array(&v) <= 32, "{line}");
        if let Some(s) = v["spectrum"].as_array() {
            assert!(s.len() <= 32);
        }
        stdout_lines += 1;
    }
    assert!(checked == 8 && stdout_lines > 3);
    // the only files it made: the history database (and SQLite's WAL files)
    let mut made: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "earshot.toml")
        .collect();
    made.sort();
    assert!(
        made.iter().all(|n| n.starts_with("history.sqlite")),
        "unexpected files: {made:?}"
    );
    // ... whose one table holds numbers per minute (no blobs), a few kB
    let bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() < 128 * 1024, "{} bytes", bytes.len());
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("CREATE TABLE minutes"));
    assert!(!text.contains("BLOB"), "a column that could hold audio");
    assert_eq!(text.matches("CREATE TABLE").count(), 1, "one table only");
}
