//! Plays back a recording made with `earshotd --stdout` (NDJSON, hello then
//! readings) as [`FeedEvent`]s, paced by the readings' own clocks and a speed
//! factor. A line that does not decode is reported as `file:line: error` and
//! skipped; an unknown protocol version stops the replay.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use earshot_protocol::{DecodeError, Message, Reading};

use crate::app::{send, FeedEvent};

/// A gap in the recording (daemon restarted, clock jump) is not replayed in full.
const MAX_GAP: Duration = Duration::from_secs(10);
/// Longer lines are not readings (a reading is about 3 KiB); as on the live path.
const MAX_LINE: u64 = 1 << 20;

/// An opened recording, ready to play.
#[derive(Debug)]
pub struct Recording {
    path: PathBuf,
    reader: BufReader<File>,
}

impl Recording {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file =
            File::open(path).with_context(|| format!("opening recording {}", path.display()))?;
        Ok(Recording {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
        })
    }
}

/// Time between two readings as recorded: by `stream_ms`, else by `time_ms`
/// when the stream position went backwards (a restarted daemon), divided by `speed`.
pub fn delay(prev: &Reading, next: &Reading, speed: f64) -> Duration {
    let ms = if next.stream_ms > prev.stream_ms {
        next.stream_ms - prev.stream_ms
    } else {
        next.time_ms.saturating_sub(prev.time_ms)
    };
    let recorded = Duration::from_millis(ms).min(MAX_GAP);
    if speed > 0.0 && speed.is_finite() {
        recorded.div_f64(speed)
    } else {
        recorded
    }
}

/// Plays the recording into `tx`, sleeping between readings; returns at the
/// end, on an unknown version, or when the receiver hangs up.
pub fn play<E: From<FeedEvent>>(
    recording: Recording,
    speed: f64,
    tx: &Sender<E>,
    sleep: impl Fn(Duration),
) {
    let Recording { path, mut reader } = recording;
    let name = path.display().to_string();
    if !send(tx, FeedEvent::Connected) {
        return;
    }
    let mut prev: Option<Reading> = None;
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        line_no += 1;
        // Bytes, not `read_line`: invalid UTF-8 is replaced and the line
        // reported, as on the live path, instead of ending the replay.
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) if buf.last() != Some(&b'\n') && buf.len() as u64 >= MAX_LINE => {
                send(
                    tx,
                    FeedEvent::BadLine(format!(
                        "{name}:{line_no}: longer than {MAX_LINE} bytes; the rest of the file is skipped"
                    )),
                );
                break;
            }
            Ok(_) => {}
            Err(e) => {
                send(tx, FeedEvent::BadLine(format!("{name}:{line_no}: {e}")));
                break;
            }
        }
        let line = String::from_utf8_lossy(&buf);
        if line.trim().is_empty() {
            continue;
        }
        let event = match earshot_protocol::decode(&line) {
            Ok(Message::Reading(reading)) => {
                if let Some(p) = &prev {
                    sleep(delay(p, &reading, speed));
                }
                prev = Some((*reading).clone());
                FeedEvent::Message(Message::Reading(reading))
            }
            Ok(msg) => FeedEvent::Message(msg),
            Err(e @ DecodeError::UnsupportedVersion { .. }) => {
                send(
                    tx,
                    FeedEvent::VersionMismatch(format!("{name}:{line_no}: {e}")),
                );
                return;
            }
            Err(e) => FeedEvent::BadLine(format!("{name}:{line_no}: {e}")),
        };
        if !send(tx, event) {
            return;
        }
    }
    send(tx, FeedEvent::Ended);
}

/// Runs [`play`] on a new thread with real sleeps.
pub fn spawn<E: From<FeedEvent> + Send + 'static>(
    recording: Recording,
    speed: f64,
    tx: Sender<E>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("earshot-replay".into())
        .spawn(move || play(recording, speed, &tx, thread::sleep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::io::Write;
    use std::sync::mpsc;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/tests/fixtures/v1.ndjson"
    );

    fn play_file(path: &Path, speed: f64) -> (Vec<FeedEvent>, Vec<Duration>) {
        let (tx, rx) = mpsc::channel();
        let sleeps = RefCell::new(Vec::new());
        play::<FeedEvent>(Recording::open(path).unwrap(), speed, &tx, |d| {
            sleeps.borrow_mut().push(d)
        });
        drop(tx);
        (rx.iter().collect(), sleeps.into_inner())
    }

    #[test]
    fn fixture_plays_paced_by_stream_time() {
        let (events, sleeps) = play_file(Path::new(FIXTURE), 4.0);
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(events[0], FeedEvent::Connected);
        assert!(matches!(events[1], FeedEvent::Message(Message::Hello(_))));
        assert!(matches!(events[3], FeedEvent::Message(Message::Reading(_))));
        assert_eq!(events[4], FeedEvent::Ended);
        assert_eq!(sleeps, [Duration::from_millis(250)]);
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("earshot-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.ndjson");
        let mut f = File::create(&path).unwrap();
        f.write_all(std::fs::read(FIXTURE).unwrap().as_slice())
            .unwrap();
        f.write_all(b"{\"v\":1,\"type\":\"reading\",\"seq\":\n")
            .unwrap();
        f.write_all(b"{\"v\":2,\"type\":\"reading\"}\n").unwrap();
        drop(f);
        let (events, _) = play_file(&path, 1.0);
        let bad = format!("{}:4: ", path.display());
        assert!(
            matches!(&events[4], FeedEvent::BadLine(m) if m.starts_with(&bad)),
            "{:?}",
            events[4]
        );
        let version = format!("{}:5: protocol version 2 is not supported", path.display());
        assert!(
            matches!(&events[5], FeedEvent::VersionMismatch(m) if m.starts_with(&version)),
            "{:?}",
            events[5]
        );
        assert_eq!(events.len(), 6, "an unknown version stops the replay");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn invalid_utf8_is_replaced_and_the_replay_goes_on() {
        let dir = std::env::temp_dir().join(format!("earshot-replay-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("latin1.ndjson");
        let fixture = std::fs::read_to_string(FIXTURE).unwrap();
        let mut lines = fixture.lines();
        let hello = lines.next().unwrap();
        let reading = lines.next().unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(hello.as_bytes());
        bytes.push(b'\n');
        // a model id with a Latin-1 byte: invalid UTF-8 inside a valid line
        let (model_id, _) = reading.split_once("\"model_id\":\"").unwrap();
        let rest = &reading[model_id.len() + "\"model_id\":\"".len()..];
        bytes.extend_from_slice(model_id.as_bytes());
        bytes.extend_from_slice(b"\"model_id\":\"caf\xe9-");
        bytes.extend_from_slice(rest.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(b"\xff\xfe garbage\n");
        bytes.extend_from_slice(reading.as_bytes());
        bytes.push(b'\n');
        std::fs::write(&path, bytes).unwrap();
        let (events, _) = play_file(&path, 1.0);
        let readings: Vec<&Reading> = events
            .iter()
            .filter_map(|e| match e {
                FeedEvent::Message(Message::Reading(r)) => Some(&**r),
                _ => None,
            })
            .collect();
        assert_eq!(readings.len(), 2, "{events:?}");
        assert!(
            readings[0].model_id.starts_with("caf\u{fffd}-"),
            "{}",
            readings[0].model_id
        );
        assert!(
            events.iter().any(|e| matches!(e, FeedEvent::BadLine(m) if m.starts_with(&format!("{}:3: ", path.display())))),
            "{events:?}"
        );
        assert_eq!(events.last(), Some(&FeedEvent::Ended));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Recording::open(Path::new("/nonexistent/x.ndjson")).unwrap_err();
        assert!(format!("{err:#}").contains("opening recording /nonexistent/x.ndjson"));
    }

    #[test]
    fn gaps_are_capped_and_restarts_use_wall_time() {
        let a = crate::demo::reading(0);
        let mut b = crate::demo::reading(1);
        assert_eq!(delay(&a, &b, 1.0), Duration::from_secs(1));
        assert_eq!(delay(&a, &b, 2.0), Duration::from_millis(500));
        b.stream_ms = 0;
        b.time_ms = a.time_ms + 3000;
        assert_eq!(delay(&a, &b, 1.0), Duration::from_secs(3));
        b.time_ms = a.time_ms + 3_600_000;
        assert_eq!(delay(&a, &b, 1.0), MAX_GAP);
    }
}
