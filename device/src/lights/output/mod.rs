//! Outputs carry a limited frame to the lights and do nothing else: the
//! mapping and every safety rule happened before them. Each physical output
//! is a [`Transport`] (encode and send one frame) wrapped in a [`Link`],
//! which logs the first error once, retries with every frame, logs the
//! recovery, and reports its state for the health view.

pub mod artnet;
pub mod gpio;
pub mod sacn;
pub mod wled;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::fixture::{Place, Rig};

/// An output's state, as the health view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Ok,
    /// Sends are failing; every frame tries again.
    Retrying,
    /// Failing for longer than [`DOWN_AFTER`].
    Down,
    Closed,
}

/// Where a link reports its state (the daemon's health counters, or nothing).
pub trait LinkStatus: Send + Sync {
    fn set_state(&self, state: LinkState);
    fn count_error(&self);
}

/// Reports nowhere (tests, `lights test`).
pub struct NoStatus;

impl LinkStatus for NoStatus {
    fn set_state(&self, _: LinkState) {}
    fn count_error(&self) {}
}

/// Failing this long turns "retrying" into "down".
pub const DOWN_AFTER: Duration = Duration::from_secs(5);

/// Encodes and sends one frame to one physical output.
pub trait Transport: Send {
    /// "lights:artnet", "lights:sacn", "lights:wled:1", ... for logs and health.
    fn name(&self) -> &str;
    /// Where it sends, for messages ("127.0.0.1:6454").
    fn target(&self) -> String;
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Last words after the final frame (e.g. sACN's stream-terminated packets).
    fn terminate(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A transport with error handling: logged once, retried every frame.
pub struct Link {
    transport: Box<dyn Transport>,
    status: Box<dyn LinkStatus>,
    failing_since: Option<Instant>,
    errors: u64,
    state: LinkState,
}

impl Link {
    pub fn new(transport: Box<dyn Transport>, status: Box<dyn LinkStatus>) -> Self {
        status.set_state(LinkState::Ok);
        Self {
            transport,
            status,
            failing_since: None,
            errors: 0,
            state: LinkState::Ok,
        }
    }

    pub fn name(&self) -> &str {
        self.transport.name()
    }

    pub fn state(&self) -> LinkState {
        self.state
    }

    fn set(&mut self, state: LinkState) {
        if state != self.state {
            self.state = state;
            self.status.set_state(state);
        }
    }

    /// Sends one frame; never returns an error, only records it.
    pub fn send(&mut self, frame: &[u8]) {
        match self.transport.send(frame) {
            Ok(()) => {
                if self.failing_since.take().is_some() {
                    tracing::info!(
                        "{} to {}: sending again after {} failed frames",
                        self.transport.name(),
                        self.transport.target(),
                        self.errors
                    );
                    self.errors = 0;
                }
                self.set(LinkState::Ok);
            }
            Err(e) => {
                self.errors += 1;
                self.status.count_error();
                match self.failing_since {
                    None => {
                        tracing::warn!(
                            "{} to {}: {e}; retrying with every frame (logged once until it recovers)",
                            self.transport.name(),
                            self.transport.target()
                        );
                        self.failing_since = Some(Instant::now());
                        self.set(LinkState::Retrying);
                    }
                    Some(since) if since.elapsed() >= DOWN_AFTER => self.set(LinkState::Down),
                    Some(_) => {}
                }
            }
        }
    }

    /// After the final frame.
    pub fn close(&mut self) {
        if let Err(e) = self.transport.terminate() {
            tracing::debug!("{}: {e}", self.transport.name());
        }
        self.set(LinkState::Closed);
    }
}

/// A UDP socket opened on first use and again after it failed to open.
pub(crate) struct LazySocket {
    socket: Option<UdpSocket>,
    next_try: Option<Instant>,
    broadcast: bool,
    multicast_ttl: Option<u32>,
}

/// Opening a socket that failed is tried again after this long.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

impl LazySocket {
    pub(crate) fn new(broadcast: bool, multicast_ttl: Option<u32>) -> Self {
        Self {
            socket: None,
            next_try: None,
            broadcast,
            multicast_ttl,
        }
    }

    fn open(&self, target: &SocketAddr) -> io::Result<UdpSocket> {
        let bind: SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = UdpSocket::bind(bind)?;
        // A send never waits: a full buffer is an error for this frame only.
        s.set_nonblocking(true)?;
        if self.broadcast {
            s.set_broadcast(true)?;
        }
        if let Some(ttl) = self.multicast_ttl {
            s.set_multicast_ttl_v4(ttl)?;
        }
        Ok(s)
    }

    pub(crate) fn send_to(&mut self, bytes: &[u8], target: &SocketAddr) -> io::Result<()> {
        if self.socket.is_none() {
            if self.next_try.is_some_and(|t| Instant::now() < t) {
                return Err(io::Error::other("socket not open yet"));
            }
            match self.open(target) {
                Ok(s) => self.socket = Some(s),
                Err(e) => {
                    self.next_try = Some(Instant::now() + REOPEN_EVERY);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot open a UDP socket: {e}"),
                    ));
                }
            }
        }
        let Some(socket) = &self.socket else {
            return Err(io::Error::other("socket not open"));
        };
        let n = socket.send_to(bytes, target)?;
        if n != bytes.len() {
            return Err(io::Error::other(format!(
                "sent {n} of {} bytes",
                bytes.len()
            )));
        }
        Ok(())
    }
}

/// Where DMX fixtures' channels go in their universes.
#[derive(Debug, Clone, PartialEq)]
pub struct DmxLayout {
    pub universes: Vec<UniverseMap>,
}

/// One universe: spans of frame channels copied to DMX addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct UniverseMap {
    /// 1-based, as sACN counts (Art-Net sends it as universe - 1).
    pub universe: u16,
    /// (first channel in the frame, 0-based DMX slot, length)
    pub spans: Vec<(usize, usize, usize)>,
}

impl DmxLayout {
    pub fn new(rig: &Rig) -> Self {
        let mut universes: Vec<UniverseMap> = Vec::new();
        for (i, f) in rig.fixtures.iter().enumerate() {
            let Place::Dmx { universe, address } = f.place else {
                continue;
            };
            let span = (rig.offset(i), usize::from(address) - 1, f.channels.len());
            match universes.iter_mut().find(|u| u.universe == universe) {
                Some(u) => u.spans.push(span),
                None => universes.push(UniverseMap {
                    universe,
                    spans: vec![span],
                }),
            }
        }
        universes.sort_by_key(|u| u.universe);
        Self { universes }
    }

    /// Fills `dmx` (512 slots) with universe `u`'s values from `frame`.
    pub fn fill(&self, u: usize, frame: &[u8], dmx: &mut [u8; 512]) {
        dmx.fill(0);
        for &(from, slot, len) in &self.universes[u].spans {
            let end = (slot + len).min(512);
            if let Some(src) = frame.get(from..from + (end - slot)) {
                dmx[slot..end].copy_from_slice(src);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flaky {
        fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
        sent: usize,
    }

    impl Transport for Flaky {
        fn name(&self) -> &str {
            "lights:test"
        }
        fn target(&self) -> String {
            "nowhere".into()
        }
        fn send(&mut self, _: &[u8]) -> io::Result<()> {
            if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
                Err(io::Error::other("network unreachable"))
            } else {
                self.sent += 1;
                Ok(())
            }
        }
    }

    #[test]
    fn a_failing_output_retries_every_frame_and_recovers() {
        let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut link = Link::new(
            Box::new(Flaky {
                fail: fail.clone(),
                sent: 0,
            }),
            Box::new(NoStatus),
        );
        link.send(&[1]);
        assert_eq!(link.state(), LinkState::Retrying);
        link.send(&[1]);
        assert_eq!(link.errors, 2);
        fail.store(false, std::sync::atomic::Ordering::Relaxed);
        link.send(&[1]);
        assert_eq!(link.state(), LinkState::Ok);
        assert_eq!(link.errors, 0);
    }
}
