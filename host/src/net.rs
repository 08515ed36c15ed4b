//! Connects to `earshotd`'s readings stream (TCP or unix socket), reads NDJSON
//! lines and sends what happens as [`FeedEvent`]s, reconnecting with
//! exponential backoff. Requests (the History view's) go the other way, sent
//! between lines. Runs on its own thread; never touches the terminal.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::thread;
use std::time::Duration;

use earshot_protocol::{DecodeError, Request};

use crate::app::{send, FeedEvent};

/// First wait after a failure; doubles each time.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest wait between attempts: a restarted daemon is seen within ~5 s.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A daemon that accepts but hangs should not hold a TCP connect forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// No line for this long (15 hops) means the daemon is stuck; reconnect.
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Longer lines are not readings (a reading is about 2 KiB).
const MAX_LINE: u64 = 1 << 20;

/// Where the daemon serves readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`
    Tcp(String),
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "tcp {addr}"),
            Endpoint::Unix(path) => write!(f, "unix {}", path.display()),
        }
    }
}

/// Waits that double from 250 ms up to 5 s, reset after a good connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    /// Wait the longest from now on (the daemon must change before retrying helps).
    pub fn max_out(&mut self) {
        self.next = BACKOFF_MAX;
    }
}

type Halves = (Box<dyn Read + Send>, Box<dyn Write + Send>);

fn connect(endpoint: &Endpoint, token: Option<&str>) -> std::io::Result<Halves> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let mut last_err = None;
            for sock in addr.to_socket_addrs()? {
                match TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT) {
                    Ok(mut stream) => {
                        stream.set_read_timeout(Some(READ_TIMEOUT))?;
                        stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
                        if let Some(token) = token {
                            stream.write_all(earshot_protocol::encode_auth(token).as_bytes())?;
                        }
                        return Ok((Box::new(stream.try_clone()?), Box::new(stream)));
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            Err(last_err.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "address resolves to nothing")
            }))
        }
        #[cfg(unix)]
        Endpoint::Unix(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path)?;
            stream.set_read_timeout(Some(READ_TIMEOUT))?;
            stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
            Ok((Box::new(stream.try_clone()?), Box::new(stream)))
        }
        #[cfg(not(unix))]
        Endpoint::Unix(_) => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "unix sockets need a unix system",
        )),
    }
}

/// How one connection ended.
enum Outcome {
    Lost(String),
    VersionMismatch,
    /// Nobody listens to our events any more.
    Closed,
}

/// Reads lines from one connection until it ends. `got_data` is set once a
/// message decoded, so the caller knows the connection was good.
fn pump<E: From<FeedEvent>>(
    endpoint: &Endpoint,
    (stream, mut writer): Halves,
    tx: &Sender<E>,
    requests: Option<&Receiver<Request>>,
    got_data: &mut bool,
) -> Outcome {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        line_no += 1;
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) => return Outcome::Lost("the daemon closed the connection".into()),
            Ok(_) if buf.last() != Some(&b'\n') && buf.len() as u64 >= MAX_LINE => {
                return Outcome::Lost(format!("line {line_no} is longer than {MAX_LINE} bytes"));
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Outcome::Lost(format!("no data for {} s", READ_TIMEOUT.as_secs()));
            }
            Err(e) => return Outcome::Lost(e.to_string()),
        }
        let text = String::from_utf8_lossy(&buf);
        if text.trim().is_empty() {
            continue;
        }
        let event = match earshot_protocol::decode(&text) {
            Ok(msg) => {
                *got_data = true;
                FeedEvent::Message(msg)
            }
            Err(e @ DecodeError::UnsupportedVersion { .. }) => {
                if !send(tx, FeedEvent::VersionMismatch(e.to_string())) {
                    return Outcome::Closed;
                }
                return Outcome::VersionMismatch;
            }
            Err(e) => FeedEvent::BadLine(format!("{endpoint}: line {line_no}: {e}")),
        };
        if !send(tx, event) {
            return Outcome::Closed;
        }
        // A line arrives every hop: requests wait at most that long.
        for request in requests.into_iter().flat_map(|r| r.try_iter()) {
            let line = earshot_protocol::encode_request(&request);
            if let Err(e) = writer.write_all(line.as_bytes()) {
                return Outcome::Lost(format!("sending a request: {e}"));
            }
        }
    }
}

/// Connects and reads forever, reconnecting with backoff; returns when the
/// receiving side hangs up.
pub fn run<E: From<FeedEvent>>(endpoint: &Endpoint, tx: &Sender<E>) {
    run_with_token(endpoint, None, tx, None)
}

/// [`run`], sending `token` first over TCP (for a daemon with `[server] token_file`)
/// and `requests` as they come.
pub fn run_with_token<E: From<FeedEvent>>(
    endpoint: &Endpoint,
    token: Option<&str>,
    tx: &Sender<E>,
    requests: Option<&Receiver<Request>>,
) {
    let mut backoff = Backoff::default();
    let mut attempt = 1;
    loop {
        if !send(tx, FeedEvent::Connecting { attempt }) {
            return;
        }
        let outcome = match connect(endpoint, token) {
            Ok(halves) => {
                if !send(tx, FeedEvent::Connected) {
                    return;
                }
                // Questions asked while disconnected are asked again on the hello.
                requests
                    .into_iter()
                    .for_each(|r| r.try_iter().for_each(drop));
                let mut got_data = false;
                let outcome = pump(endpoint, halves, tx, requests, &mut got_data);
                if got_data {
                    backoff.reset();
                    attempt = 0;
                }
                outcome
            }
            Err(e) => Outcome::Lost(format!("cannot connect to {endpoint}: {e}")),
        };
        match outcome {
            Outcome::Closed => return,
            Outcome::Lost(reason) => {
                if !send(tx, FeedEvent::Lost { reason }) {
                    return;
                }
            }
            Outcome::VersionMismatch => backoff.max_out(),
        }
        attempt += 1;
        thread::sleep(backoff.next_delay());
    }
}

/// Runs [`run_with_token`] on a new thread.
pub fn spawn<E: From<FeedEvent> + Send + 'static>(
    endpoint: Endpoint,
    token: Option<String>,
    tx: Sender<E>,
    requests: Receiver<Request>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("earshot-net".into())
        .spawn(move || run_with_token(&endpoint, token.as_deref(), &tx, Some(&requests)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::mpsc;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(250));
    }

    #[test]
    fn reads_messages_reports_bad_lines_and_loss() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut out = earshot_protocol::encode_line(&crate::demo::hello());
            out.push_str("{\"v\":1,\"type\":\"reading\"}\n");
            out.push_str(&earshot_protocol::encode_line(
                &crate::demo::reading_message(0),
            ));
            s.write_all(out.as_bytes()).unwrap();
        });
        let (tx, rx) = mpsc::channel();
        let endpoint = Endpoint::Tcp(addr.to_string());
        thread::spawn(move || run::<FeedEvent>(&endpoint, &tx));
        let events: Vec<FeedEvent> = rx.iter().take(6).collect();
        server.join().unwrap();
        assert_eq!(events[0], FeedEvent::Connecting { attempt: 1 });
        assert_eq!(events[1], FeedEvent::Connected);
        assert!(matches!(
            events[2],
            FeedEvent::Message(earshot_protocol::Message::Hello(_))
        ));
        assert!(
            matches!(&events[3], FeedEvent::BadLine(m) if m.starts_with(&format!("tcp {addr}: line 2: malformed"))),
            "{:?}",
            events[3]
        );
        assert!(matches!(
            events[4],
            FeedEvent::Message(earshot_protocol::Message::Reading(_))
        ));
        assert!(matches!(events[5], FeedEvent::Lost { .. }));
    }

    #[test]
    fn the_token_is_sent_first_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut first = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut first)
                .unwrap();
            let mut s = s;
            s.write_all(earshot_protocol::encode_line(&crate::demo::hello()).as_bytes())
                .unwrap();
            first
        });
        let (tx, rx) = mpsc::channel();
        let endpoint = Endpoint::Tcp(addr.to_string());
        thread::spawn(move || {
            run_with_token::<FeedEvent>(&endpoint, Some("s3cret-token-123"), &tx, None)
        });
        let hello = rx
            .iter()
            .find(|e| matches!(e, FeedEvent::Message(earshot_protocol::Message::Hello(_))));
        assert!(hello.is_some());
        let first = server.join().unwrap();
        assert_eq!(
            earshot_protocol::decode_auth(&first).unwrap().token,
            "s3cret-token-123"
        );
    }

    #[test]
    fn unknown_version_is_reported_with_the_protocol_text() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"{\"v\":9,\"type\":\"hello\"}\n").unwrap();
        });
        let (tx, rx) = mpsc::channel();
        let endpoint = Endpoint::Tcp(addr.to_string());
        thread::spawn(move || run::<FeedEvent>(&endpoint, &tx));
        let mismatch = rx
            .iter()
            .find_map(|e| match e {
                FeedEvent::VersionMismatch(m) => Some(m),
                _ => None,
            })
            .unwrap();
        assert!(
            mismatch.contains("protocol version 9 is not supported"),
            "{mismatch}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn reads_from_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("earshot-net-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("earshot.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(earshot_protocol::encode_line(&crate::demo::hello()).as_bytes())
                .unwrap();
        });
        let (tx, rx) = mpsc::channel();
        let endpoint = Endpoint::Unix(path.clone());
        thread::spawn(move || run::<FeedEvent>(&endpoint, &tx));
        let hello = rx
            .iter()
            .find(|e| matches!(e, FeedEvent::Message(earshot_protocol::Message::Hello(_))));
        assert!(hello.is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_daemon_is_reported_as_lost() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (tx, rx) = mpsc::channel();
        let endpoint = Endpoint::Tcp(format!("127.0.0.1:{port}"));
        thread::spawn(move || run::<FeedEvent>(&endpoint, &tx));
        let lost = rx
            .iter()
            .find_map(|e| match e {
                FeedEvent::Lost { reason } => Some(reason),
                _ => None,
            })
            .unwrap();
        assert!(
            lost.starts_with(&format!("cannot connect to tcp 127.0.0.1:{port}")),
            "{lost}"
        );
    }
}
