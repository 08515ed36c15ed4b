//! The readings stream server: TCP (127.0.0.1:7878 by default) and a unix
//! socket. Any number of consoles can connect; each gets the hello line,
//! then every reading as NDJSON (`earshot_protocol`).
//!
//! Each client has its own writer thread and bounded queue. A client whose
//! queue fills up (it reads too slowly) or whose socket blocks longer than
//! [`WRITE_TIMEOUT`] is dropped with a log line; the others never wait for it.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown as NetShutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use earshot_protocol::{encode_line, Hello, Message, Reading};

use super::queue::Queue;
use super::{PublishError, Sink, SinkError};
use crate::config::ServerSettings;
use crate::health::Counters;

/// A client whose socket accepts nothing for this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop looks for connections and for shutdown.
const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// At shutdown, clients get this long to receive what is queued.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn try_clone(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(NetShutdown::Both),
            Conn::Unix(s) => s.shutdown(NetShutdown::Both),
        };
    }

    fn prepare(&self, send_buffer_bytes: usize) -> std::io::Result<()> {
        let sock = match self {
            Conn::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                socket2::SockRef::from(s)
            }
            Conn::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                socket2::SockRef::from(s)
            }
        };
        if send_buffer_bytes > 0 {
            sock.set_send_buffer_size(send_buffer_bytes)?;
        }
        Ok(())
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

struct Client {
    peer: String,
    queue: Arc<Queue<Arc<str>>>,
    /// Set by the writer thread when the connection ended.
    gone: Arc<AtomicBool>,
    /// For interrupting a blocked write when the client is dropped.
    conn: Conn,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    hello: Arc<str>,
    clients: Mutex<Vec<Client>>,
    health: Arc<Counters>,
    client_queue: usize,
    send_buffer_bytes: usize,
}

impl Shared {
    fn clients(&self) -> MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, conn: Conn, peer: String) {
        if let Err(e) = conn.prepare(self.send_buffer_bytes) {
            tracing::warn!("client {peer}: cannot set up the connection: {e}");
            return;
        }
        let Ok(writer) = conn.try_clone() else {
            tracing::warn!("client {peer}: cannot clone the connection");
            return;
        };
        let queue = Arc::new(Queue::new(self.client_queue + 1));
        let _ = queue.try_push(Arc::clone(&self.hello));
        let gone = Arc::new(AtomicBool::new(false));
        let thread = {
            let (queue, gone, peer) = (Arc::clone(&queue), Arc::clone(&gone), peer.clone());
            std::thread::Builder::new()
                .name("stream-client".into())
                .spawn(move || write_loop(writer, &queue, &gone, &peer))
        };
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("client {peer}: cannot start its writer: {e}");
                return;
            }
        };
        let mut clients = self.clients();
        clients.push(Client {
            peer: peer.clone(),
            queue,
            gone,
            conn,
            thread: Some(thread),
        });
        self.health
            .clients
            .store(clients.len() as u32, Ordering::Relaxed);
        tracing::info!("client {peer} connected ({} connected)", clients.len());
    }
}

fn write_loop(mut conn: Conn, queue: &Queue<Arc<str>>, gone: &AtomicBool, peer: &str) {
    while let Some(line) = queue.pop() {
        if let Err(e) = conn.write_all(line.as_bytes()) {
            match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => tracing::warn!(
                    "client {peer} dropped: it accepted nothing for {WRITE_TIMEOUT:?}"
                ),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::NotConnected => {
                    tracing::info!("client {peer} disconnected")
                }
                _ => tracing::info!("client {peer} disconnected: {e}"),
            }
            break;
        }
    }
    conn.shutdown();
    gone.store(true, Ordering::Relaxed);
}

/// The stream server, as a sink.
pub struct Server {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    unix_path: Option<PathBuf>,
}

fn bind_unix(path: &Path) -> Result<UnixListener, PublishError> {
    let bind_err = |source: std::io::Error, hint: &'static str| PublishError::Bind {
        what: format!("unix socket {}", path.display()),
        hint,
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(bind_err(
                std::io::Error::new(ErrorKind::AddrInUse, "another process serves it"),
                "is another earshotd running? stop it or set [server] unix_socket",
            ));
        }
        // A socket left behind by a daemon that did not shut down cleanly.
        std::fs::remove_file(path).map_err(|e| bind_err(e, "remove the stale socket file"))?;
    }
    UnixListener::bind(path).map_err(|e| {
        bind_err(
            e,
            "check that the directory exists and is writable, or set [server] unix_socket",
        )
    })
}

impl Server {
    /// Binds the listeners (errors name the address) and starts accepting.
    pub fn start(
        settings: &ServerSettings,
        hello: &Hello,
        health: Arc<Counters>,
    ) -> Result<Self, PublishError> {
        let tcp = match settings.tcp {
            Some(addr) => {
                let l = TcpListener::bind(addr).map_err(|source| PublishError::Bind {
                    what: format!("tcp {addr}"),
                    hint: "is another earshotd running? set [server] tcp in the config or pass --listen",
                    source,
                })?;
                l.set_nonblocking(true)
                    .map_err(|source| PublishError::Bind {
                        what: format!("tcp {addr}"),
                        hint: "the socket cannot be made non-blocking",
                        source,
                    })?;
                let local = l.local_addr().unwrap_or(addr);
                tracing::info!("stream server listening on tcp {local}");
                Some(l)
            }
            None => None,
        };
        let unix = match &settings.unix_socket {
            Some(path) => {
                let l = bind_unix(path)?;
                l.set_nonblocking(true)
                    .map_err(|source| PublishError::Bind {
                        what: format!("unix socket {}", path.display()),
                        hint: "the socket cannot be made non-blocking",
                        source,
                    })?;
                tracing::info!("stream server listening on unix {}", path.display());
                Some(l)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            hello: encode_line(&Message::Hello(hello.clone())).into(),
            clients: Mutex::new(Vec::new()),
            health,
            client_queue: settings.client_queue,
            send_buffer_bytes: settings.send_buffer_bytes,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("stream-accept".into())
                .spawn(move || accept_loop(tcp, unix, &shared, &stop))
                .map_err(|source| PublishError::Bind {
                    what: "the stream server".into(),
                    hint: "the system is out of threads",
                    source,
                })?
        };
        Ok(Self {
            shared,
            stop,
            accept: Some(accept),
            unix_path: settings.unix_socket.clone(),
        })
    }
}

fn accept_loop(
    tcp: Option<TcpListener>,
    unix: Option<UnixListener>,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let mut unix_count = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        if let Some(l) = &tcp {
            match l.accept() {
                Ok((s, peer)) => {
                    idle = false;
                    shared.add(Conn::Tcp(s), format!("tcp {peer}"));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => tracing::warn!("accepting a tcp client: {e}"),
            }
        }
        if let Some(l) = &unix {
            match l.accept() {
                Ok((s, _)) => {
                    idle = false;
                    unix_count += 1;
                    shared.add(Conn::Unix(s), format!("unix #{unix_count}"));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => tracing::warn!("accepting a unix client: {e}"),
            }
        }
        if idle {
            std::thread::sleep(ACCEPT_POLL);
        }
    }
}

impl Sink for Server {
    fn name(&self) -> &'static str {
        "server"
    }

    fn publish(&mut self, reading: &Reading) -> Result<(), SinkError> {
        let line: Arc<str> = encode_line(&Message::Reading(Box::new(reading.clone()))).into();
        let mut clients = self.shared.clients();
        let before = clients.len();
        clients.retain_mut(|c| {
            if c.gone.load(Ordering::Relaxed) {
                return false;
            }
            if c.queue.try_push(Arc::clone(&line)).is_err() {
                tracing::warn!(
                    "client {} dropped: too slow, {} readings behind",
                    c.peer,
                    c.queue.len()
                );
                Counters::bump(&self.shared.health.dropped_readings);
                c.queue.abort();
                c.conn.shutdown();
                return false;
            }
            true
        });
        if clients.len() != before {
            self.shared
                .health
                .clients
                .store(clients.len() as u32, Ordering::Relaxed);
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let mut clients = std::mem::take(&mut *self.shared.clients());
        for c in &clients {
            c.queue.close();
        }
        let deadline = Instant::now() + DRAIN_GRACE;
        while Instant::now() < deadline && clients.iter().any(|c| !c.gone.load(Ordering::Relaxed)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for c in &mut clients {
            c.conn.shutdown();
            if let Some(t) = c.thread.take() {
                let _ = t.join();
            }
        }
        self.shared.health.clients.store(0, Ordering::Relaxed);
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use earshot_protocol::{decode, MidLevel};
    use std::io::{BufRead, BufReader};

    fn hello() -> Hello {
        Hello {
            daemon: "t".into(),
            model_id: "m".into(),
            source: "test".into(),
            hop_ms: 990,
            window_ms: 9993,
            smoothing_ms: 0,
            mid_level_means: MidLevel::from_array([0.5; 7]),
        }
    }

    #[test]
    fn tcp_and_unix_clients_get_hello_then_readings() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let settings = ServerSettings {
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            unix_socket: Some(sock.clone()),
            client_queue: 8,
            send_buffer_bytes: 0,
        };
        let mut server = Server::start(&settings, &hello(), Arc::new(Counters::default())).unwrap();
        let unix = UnixStream::connect(&sock).unwrap();
        let mut r = BufReader::new(unix);
        // wait for the accept loop to register the client
        let t0 = Instant::now();
        while server.shared.clients().is_empty() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let reading = Reading {
            seq: 3,
            time_ms: 1,
            stream_ms: 2,
            model_id: "m".into(),
            state: earshot_protocol::InputState::Silence,
            level_dbfs: -99.0,
            spectrum: vec![0.0],
            analysis: None,
            latency_ms: 0.5,
            health: Default::default(),
        };
        server.publish(&reading).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(matches!(decode(&line).unwrap(), Message::Hello(_)));
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(matches!(decode(&line).unwrap(), Message::Reading(r) if r.seq == 3));
        server.close().unwrap();
        assert!(!sock.exists(), "socket file removed at shutdown");
    }

    #[test]
    fn a_live_socket_is_not_stolen() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let _held = UnixListener::bind(&sock).unwrap();
        let err = bind_unix(&sock).unwrap_err().to_string();
        assert!(err.contains("another earshotd"), "{err}");
        drop(_held);
        // a stale file (nobody listening) is replaced
        assert!(bind_unix(&sock).is_ok());
    }
}
