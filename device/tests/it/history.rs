//! History: a real clip through the daemon into SQLite, read back by
//! `earshotd report` and by a console over the stream; nothing but numbers
//! is stored.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use earshot_protocol::{decode, encode_request, Message, Request};

use super::util::{earshotd, readings, run, shared_data, Daemon};

#[test]
fn readings_of_a_clip_become_an_hour_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let config = dir.path().join("earshot.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nenabled = false\n[stdout]\nenabled = true\n[history]\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let clip = shared_data().join("soundtracks/audio/001.mp3");
    let out = run(
        earshotd()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--file")
            .arg(&clip),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let readings = readings(&out.stdout);
    let music: Vec<&serde_json::Value> =
        readings.iter().filter(|r| r["state"] == "music").collect();
    assert!(music.len() > 10);

    let out = run(
        earshotd()
            .args(["report", "--since", "2h", "--json", "--db"])
            .arg(&db),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hours: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let total: u64 = hours.iter().map(|h| h["readings"].as_u64().unwrap()).sum();
    assert_eq!(total as usize, readings.len(), "every reading counted once");
    let last = hours.last().unwrap();
    let share = last["music_share"].as_f64().unwrap();
    assert!(share > 0.3 && share <= 1.0, "{share}");
    // the hour's mean valence is the mean of the music readings' valence
    // (when the clip straddles an hour, the last hour holds a part of it)
    if hours.len() == 1 {
        let want: f64 = music
            .iter()
            .map(|r| r["analysis"]["emotions"]["valence"].as_f64().unwrap())
            .sum::<f64>()
            / music.len() as f64;
        let got = last["means"]["valence"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        let dominant = last["dominant"].as_str().unwrap();
        assert!(
            ["valence", "energy", "tension", "anger", "fear", "happy", "sad", "tender"]
                .contains(&dominant)
        );
    }

    // the table form and the CSV form read the same file
    let out = run(
        earshotd().args(["report", "--db"]).arg(&db),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("hour (UTC)"), "{text}");
    let out = run(
        earshotd().args(["report", "--csv", "--db"]).arg(&db),
        Duration::from_secs(30),
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), hours.len() + 1, "{csv}");

    // A console asks a running daemon (same config: it keeps writing the
    // history) over the stream; the answer holds the same hours.
    let served = dir.path().join("served.toml");
    std::fs::write(
        &served,
        format!(
            "[server]\ntcp = \"127.0.0.1:0\"\nunix_socket = \"\"\n[history]\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::spawn(earshotd().args(["run", "--demo", "--config"]).arg(&served));
    let listening = daemon.wait_stderr("listening on tcp ", Duration::from_secs(60));
    let addr = listening.rsplit("tcp ").next().unwrap().trim().to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let ask = encode_request(&Request::History {
        span_ms: 2 * 3_600_000,
        bucket_ms: 3_600_000,
    });
    conn.write_all(ask.as_bytes()).unwrap();
    let answer = BufReader::new(conn)
        .lines()
        .find_map(|l| match decode(&l.unwrap()).unwrap() {
            Message::History(h) => Some(h),
            _ => None,
        })
        .unwrap();
    assert_eq!(answer.unavailable, None);
    assert_eq!(answer.bucket_ms, 3_600_000);
    let got: Vec<(u64, u32)> = answer
        .buckets
        .iter()
        .map(|b| (b.start_ms, b.readings))
        .collect();
    let want: Vec<(u64, u32)> = hours
        .iter()
        .map(|h| {
            (
                h["start_ms"].as_u64().unwrap(),
                h["readings"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(daemon.terminate().success());

    // privacy: minutes of numbers, a few kB, never audio
    let size = std::fs::metadata(&db).unwrap().len()
        + std::fs::metadata(dir.path().join("history.sqlite-wal")).map_or(0, |m| m.len());
    assert!(
        size < 256 * 1024,
        "{size} bytes for {} readings",
        readings.len()
    );
}

#[test]
fn report_without_a_history_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        earshotd()
            .args(["report", "--db"])
            .arg(dir.path().join("none.sqlite")),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such history file"), "{err}");
    let out = run(earshotd().args(["report"]), Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--db FILE or --config FILE"));
}
