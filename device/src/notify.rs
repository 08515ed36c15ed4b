//! systemd's readiness and watchdog protocol (`sd_notify`), without libsystemd.
//!
//! Under `Type=notify` systemd passes a datagram socket in `$NOTIFY_SOCKET`
//! (a path, or an abstract name written with a leading `@`); the daemon sends
//! `READY=1` once it serves readings and, under `WatchdogSec=`, `WATCHDOG=1`
//! more often than that interval. earshotd sends `WATCHDOG=1` only when a
//! reading has been published, so a daemon that runs but publishes nothing
//! (a stuck model or loop) is restarted by systemd. A lost microphone is not
//! such a case: the capture supervisor (`capture::supervisor`) publishes
//! readings without audio while it reopens the input, says so in `STATUS=`,
//! and exits with an error when restarts do not help (`Restart=on-failure`).
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// A connection to systemd's notification socket, or nothing outside systemd.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// What `NOTIFY_SOCKET` said, for error messages.
    name: OsString,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for; disabled when it is unset or
    /// empty, or (with a warning) when it cannot be used: earshotd still runs.
    pub fn from_env() -> Self {
        Self::new(std::env::var_os("NOTIFY_SOCKET").as_deref()).unwrap_or_else(|e| {
            tracing::warn!("{e}; not notifying systemd");
            Self::disabled()
        })
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self { target: None }
    }

    /// A notifier sending to `socket` (`NOTIFY_SOCKET`'s syntax); `None` or
    /// empty: disabled.
    pub fn new(socket: Option<&OsStr>) -> io::Result<Self> {
        let Some(name) = socket.filter(|s| !s.is_empty()) else {
            return Ok(Self::disabled());
        };
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("NOTIFY_SOCKET {}: {e}", name.to_string_lossy()),
            )
        };
        let addr = address(name).map_err(context)?;
        let socket = UnixDatagram::unbound().map_err(context)?;
        Ok(Self {
            target: Some(Target {
                socket,
                addr,
                name: name.to_os_string(),
            }),
        })
    }

    /// Whether there is a systemd to notify.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=value` lines); `Ok(false)` when disabled.
    pub fn notify(&self, state: &str) -> io::Result<bool> {
        let Some(t) = &self.target else {
            return Ok(false);
        };
        let sent = t
            .socket
            .send_to_addr(state.as_bytes(), &t.addr)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("notifying systemd at {}: {e}", t.name.to_string_lossy()),
                )
            })?;
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "notifying systemd at {}: sent {sent} of {} bytes",
                    t.name.to_string_lossy(),
                    state.len()
                ),
            ));
        }
        Ok(true)
    }

    /// `READY=1`: start-up is done (with a status line for `systemctl status`).
    pub fn ready(&self, status: &str) -> io::Result<bool> {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// `STATUS=`: what `systemctl status` shows (e.g. that the input is lost).
    pub fn status(&self, status: &str) -> io::Result<bool> {
        self.notify(&format!("STATUS={}", one_line(status)))
    }

    /// `STOPPING=1`: shutting down on purpose.
    pub fn stopping(&self) -> io::Result<bool> {
        self.notify("STOPPING=1")
    }
}

/// A `STATUS=` value must stay on one line: the protocol is line-based.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// `NOTIFY_SOCKET`'s value as an address: `/path` or `@abstract-name`.
fn address(name: &OsStr) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    match name.as_bytes() {
        [b'@', rest @ ..] => abstract_address(rest),
        [b'/', ..] => SocketAddr::from_pathname(name),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@...)",
        )),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// `WatchdogSec=` as systemd passes it (`WATCHDOG_USEC`, for `WATCHDOG_PID`
/// if set): `None` when there is no watchdog for this process.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    match usec?.trim().parse::<u64>() {
        Ok(0) | Err(_) => None,
        Ok(us) => Some(Duration::from_micros(us)),
    }
}

/// Sends `WATCHDOG=1` for readings that flow, at most every `min_gap`.
#[derive(Debug)]
pub struct Watchdog {
    notifier: Notifier,
    min_gap: Duration,
    last: Option<Instant>,
    /// The first failure is logged; a broken socket must not flood the log.
    warned: bool,
}

impl Watchdog {
    /// `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`; pings at a quarter of the
    /// interval (systemd's advice is half), at most once a second.
    pub fn from_env() -> Self {
        let interval = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        );
        let min_gap = interval.map_or(Duration::from_secs(1), |i| {
            (i / 4).min(Duration::from_secs(1))
        });
        Self::new(Notifier::from_env(), min_gap)
    }

    pub fn new(notifier: Notifier, min_gap: Duration) -> Self {
        Self {
            notifier,
            min_gap,
            last: None,
            warned: false,
        }
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// A reading went out: tell systemd the daemon is alive (rate-limited).
    /// Returns whether a ping was sent.
    pub fn reading(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.min_gap)
        {
            return false;
        }
        match self.notifier.notify("WATCHDOG=1") {
            Ok(sent) => {
                self.last = Some(now);
                sent
            }
            Err(e) => {
                if !self.warned {
                    tracing::warn!("{e}; the systemd watchdog will restart earshotd");
                    self.warned = true;
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> (tempfile::TempDir, std::path::PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (dir, path, sock)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_ready_and_stopping_to_a_path_socket() {
        let (_dir, path, sock) = receiver();
        let n = Notifier::new(Some(path.as_os_str())).expect("notifier");
        assert!(n.is_enabled());
        assert!(n.ready("reading demo\nevery 990 ms").expect("send"));
        assert_eq!(recv(&sock), "READY=1\nSTATUS=reading demo every 990 ms");
        assert!(n.stopping().expect("send"));
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("earshot-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let n = Notifier::new(Some(OsStr::new(&format!("@{name}")))).expect("notifier");
        assert!(n.notify("WATCHDOG=1").expect("send"));
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn unset_or_empty_does_nothing() {
        for v in [None, Some(OsStr::new(""))] {
            let n = Notifier::new(v).expect("notifier");
            assert!(!n.is_enabled());
            assert!(!n.ready("x").expect("no-op"));
        }
    }

    #[test]
    fn a_relative_path_is_refused_and_a_missing_socket_fails_to_send() {
        let e = Notifier::new(Some(OsStr::new("notify.sock"))).expect_err("relative");
        assert!(e.to_string().contains("NOTIFY_SOCKET notify.sock"), "{e}");
        let dir = tempfile::tempdir().expect("temp dir");
        let gone = dir.path().join("gone.sock");
        let n = Notifier::new(Some(gone.as_os_str())).expect("notifier");
        let e = n.notify("READY=1").expect_err("nobody listens");
        assert!(e.to_string().contains("notifying systemd at"), "{e}");
        // The watchdog logs that once and keeps going.
        let mut w = Watchdog::new(n, Duration::ZERO);
        assert!(!w.reading());
        assert!(!w.reading());
    }

    #[test]
    fn watchdog_pings_per_reading_at_most_every_gap() {
        let (_dir, path, sock) = receiver();
        let n = Notifier::new(Some(path.as_os_str())).expect("notifier");
        let mut w = Watchdog::new(n, Duration::from_millis(200));
        assert!(w.reading());
        assert_eq!(recv(&sock), "WATCHDOG=1");
        // A second reading right after is not worth a datagram.
        assert!(!w.reading());
        std::thread::sleep(Duration::from_millis(250));
        assert!(w.reading());
        assert_eq!(recv(&sock), "WATCHDOG=1");
        // Nothing else arrived in between.
        sock.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        assert!(sock.recv(&mut buf).is_err());
    }

    #[test]
    fn watchdog_interval_follows_systemd_variables() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_interval(Some("30000000"), None),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some(&me)),
            Some(Duration::from_secs(30))
        );
        // Meant for another process (e.g. a parent that forked us).
        let other = (std::process::id() + 1).to_string();
        assert_eq!(watchdog_interval(Some("30000000"), Some(&other)), None);
        assert_eq!(watchdog_interval(Some("0"), None), None);
        assert_eq!(watchdog_interval(Some("soon"), None), None);
        assert_eq!(watchdog_interval(None, None), None);
    }
}
