//! The readings stream server: TCP (127.0.0.1:7878 by default) and a unix
//! socket. Any number of consoles can connect; each gets the hello line,
//! then every reading as NDJSON (`earshot_protocol`).
//!
//! Each client has its own writer thread and bounded queue. A client whose
//! queue fills up (it reads too slowly) or whose socket blocks longer than
//! [`WRITE_TIMEOUT`] is dropped with a log line; the others never wait for it.
//!
//! Each client also has a reader thread: it checks the token when one is
//! required, then answers history requests (`earshot_protocol::history`) from
//! the history database, read-only, into the client's queue. Nothing a client
//! sends reaches the audio path.

use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use earshot_protocol::history::MAX_REQUEST_LINE;
use earshot_protocol::{decode_request, encode_line, Hello, History, Message, Request};

use super::queue::Queue;
use super::{PublishError, Published, Sink, SinkError};
use crate::health::Counters;

mod config;
pub use config::{
    default_unix_socket, ServerConfig, ServerSettings, Token, DEFAULT_CLIENT_QUEUE,
    DEFAULT_MAX_CLIENTS, MIN_TOKEN_CHARS,
};

/// A client whose socket accepts nothing for this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop looks for connections and for shutdown.
const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// At shutdown, clients get this long to receive what is queued.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// Log the first refused connection, then every this many.
const REFUSED_LOG_EVERY: u64 = 100;
/// A client of a server that requires a token must send it within this long.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// The auth line is short; a longer one is not an auth line.
const MAX_AUTH_LINE: u64 = 4096;
/// A client's history requests are answered at most this often.
const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

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

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
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

/// A client's queue and its "connection ended" flag, for its reader thread.
type Joined = (Arc<Queue<Arc<str>>>, Arc<AtomicBool>);

struct Shared {
    hello: Arc<str>,
    clients: Mutex<Vec<Client>>,
    health: Arc<Counters>,
    client_queue: usize,
    send_buffer_bytes: usize,
    max_clients: usize,
    /// Connections turned away (too many clients, or no valid token).
    refused: AtomicU64,
    /// sha256 of the token TCP clients must send first, if one is required.
    token_digest: Option<[u8; 32]>,
    /// Clients accepted but not yet added (e.g. still to send their token);
    /// they count towards `max_clients`.
    pending: AtomicUsize,
    /// Set under the clients lock at shutdown: no client is added after it.
    closing: AtomicBool,
    /// The history database that requests are answered from ([history] path).
    history_db: Option<PathBuf>,
    /// One history query at a time, whatever the number of clients asking:
    /// they share one core at most, never the model's.
    history_query: Mutex<()>,
}

impl Shared {
    fn clients(&self) -> MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs a refused connection: the first, then every [`REFUSED_LOG_EVERY`].
    fn refuse(&self, conn: &Conn, peer: &str, why: &str) {
        // counted before the client can see the close, so a count read after it is whole
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        conn.shutdown();
        if n == 1 || n.is_multiple_of(REFUSED_LOG_EVERY) {
            tracing::warn!("client {peer} refused: {why} ({n} refused so far)");
        }
    }

    /// A new connection: turned away when `max_clients` are served (or await
    /// their token), else served by its own reader thread (which checks the
    /// token first if one is required) and writer thread.
    fn admit(self: &Arc<Self>, conn: Conn, peer: String) {
        {
            let mut clients = self.clients();
            clients.retain(|c| !c.gone.load(Ordering::Relaxed));
            let busy = clients.len() + self.pending.load(Ordering::Relaxed);
            if busy >= self.max_clients {
                drop(clients);
                let why =
                    format!("{busy} clients are connected, the most [server] max_clients allows");
                self.refuse(&conn, &peer, &why);
                return;
            }
        }
        let digest = match (&conn, self.token_digest) {
            (Conn::Tcp(_), Some(digest)) => Some(digest),
            _ => None,
        };
        // Counted until its reader thread has added it, so that a burst of
        // connections cannot slip past the cap.
        self.pending.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("stream-reader".into())
            .spawn(move || shared.serve(conn, peer, digest));
        if let Err(e) = started {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!("a client: cannot start its reader: {e}");
        }
    }

    /// A client's reader thread: the token check, then the client joins the
    /// stream, then its requests are answered until it stops sending.
    fn serve(&self, conn: Conn, peer: String, digest: Option<[u8; 32]>) {
        let joined = match conn.try_clone() {
            Err(_) => {
                tracing::warn!("client {peer}: cannot clone the connection");
                None
            }
            Ok(c) => {
                let mut reader = std::io::BufReader::new(c);
                let checked = match digest {
                    Some(digest) => check_token(&mut reader, &digest),
                    None => Ok(()),
                };
                match checked {
                    Ok(()) => self.add(conn, peer.clone()).map(|j| (j, reader)),
                    Err(why) => {
                        self.refuse(&conn, &peer, why);
                        None
                    }
                }
            }
        };
        // after joining, so that the client is never uncounted
        self.pending.fetch_sub(1, Ordering::Relaxed);
        if let Some(((queue, gone), mut reader)) = joined {
            self.answer_requests(&mut reader, &queue, &gone, &peer);
        }
    }

    /// Reads request lines and queues the answers. Returns when the client
    /// stops sending (it may still read: a half-closed client keeps its
    /// readings) or sends something that is not a request line.
    fn answer_requests(
        &self,
        reader: &mut std::io::BufReader<Conn>,
        queue: &Queue<Arc<str>>,
        gone: &AtomicBool,
        peer: &str,
    ) {
        let mut line = Vec::new();
        let mut last: Option<Instant> = None;
        let mut ignored = false;
        loop {
            line.clear();
            match reader
                .by_ref()
                .take(MAX_REQUEST_LINE as u64)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => return,
                Ok(_) if line.last() != Some(&b'\n') => {
                    tracing::info!(
                        "client {peer} sent a line longer than {MAX_REQUEST_LINE} bytes; \
                         its requests are no longer read"
                    );
                    return;
                }
                Ok(_) => {}
            }
            if gone.load(Ordering::Relaxed) {
                return;
            }
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            match decode_request(&text) {
                Ok(Request::History { span_ms, bucket_ms }) => {
                    if let Some(t) = last {
                        std::thread::sleep(REQUEST_INTERVAL.saturating_sub(t.elapsed()));
                    }
                    last = Some(Instant::now());
                    let answer = encode_line(&Message::History(self.history(span_ms, bucket_ms)));
                    if queue.try_push(answer.into()).is_err() {
                        tracing::debug!("client {peer}: queue full, history answer dropped");
                    }
                }
                // Never logs what the client sent: it is untrusted text.
                Err(_) if !ignored => {
                    ignored = true;
                    tracing::info!(
                        "client {peer} sent a line that is not a request; ignoring such lines"
                    );
                }
                Err(_) => {}
            }
        }
    }

    fn history(&self, span_ms: u64, bucket_ms: u64) -> History {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match &self.history_db {
            Some(db) => {
                let _one = self.history_query.lock().unwrap_or_else(|p| p.into_inner());
                super::history::query(db, span_ms, bucket_ms, now_ms)
            }
            None => History {
                span_ms,
                bucket_ms: History::bucket_for(span_ms, bucket_ms),
                buckets: Vec::new(),
                unavailable: Some(
                    "this daemon keeps no history: set [history] path in its config".into(),
                ),
            },
        }
    }

    /// Starts the client's writer; returns its queue and gone flag.
    fn add(&self, conn: Conn, peer: String) -> Option<Joined> {
        if let Err(e) = conn.prepare(self.send_buffer_bytes) {
            tracing::warn!("client {peer}: cannot set up the connection: {e}");
            return None;
        }
        let Ok(writer) = conn.try_clone() else {
            tracing::warn!("client {peer}: cannot clone the connection");
            return None;
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
                return None;
            }
        };
        let mut clients = self.clients();
        if self.closing.load(Ordering::Relaxed) {
            drop(clients);
            queue.abort();
            conn.shutdown();
            return None;
        }
        clients.push(Client {
            peer: peer.clone(),
            queue: Arc::clone(&queue),
            gone: Arc::clone(&gone),
            conn,
            thread: Some(thread),
        });
        self.health
            .clients
            .store(clients.len() as u32, Ordering::Relaxed);
        tracing::info!("client {peer} connected ({} connected)", clients.len());
        Some((queue, gone))
    }
}

/// Reads the client's first line and checks it is the auth line with the token.
/// Never logs what the client sent: it is untrusted text.
fn check_token(
    reader: &mut std::io::BufReader<Conn>,
    digest: &[u8; 32],
) -> Result<(), &'static str> {
    let Conn::Tcp(stream) = reader.get_ref() else {
        return Ok(());
    };
    stream
        .set_read_timeout(Some(AUTH_TIMEOUT))
        .map_err(|_| "its connection cannot be read")?;
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(MAX_AUTH_LINE)
        .read_until(b'\n', &mut line);
    if let Conn::Tcp(stream) = reader.get_ref() {
        let _ = stream.set_read_timeout(None);
    }
    match read {
        Ok(_) if line.last() == Some(&b'\n') => {}
        Ok(_) => return Err("no token (the server requires [server] token_file's token)"),
        Err(_) => return Err("no token within 5 s (the server requires one)"),
    }
    let auth = earshot_protocol::decode_auth(&String::from_utf8_lossy(&line))
        .map_err(|_| "its first line is not an auth line (the server requires a token)")?;
    if token_digest(&auth.token) == *digest {
        Ok(())
    } else {
        Err("wrong token")
    }
}

/// The digest tokens are compared by (so that comparing takes the same time
/// however many leading characters a guess gets right).
fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
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
    /// The unix socket this server made, to remove at shutdown if it is still that one.
    unix_path: Option<(PathBuf, FileId)>,
    tcp_addr: Option<SocketAddr>,
}

/// Identity of a file (device and inode), to remove at shutdown only the
/// socket this daemon made, not one someone put in its place since.
type FileId = (u64, u64);

fn file_id(path: &Path) -> Option<FileId> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_socket())
        .map(|m| (m.dev(), m.ino()))
}

fn bind_unix(path: &Path) -> Result<(UnixListener, Option<FileId>), PublishError> {
    let bind_err = |source: std::io::Error, hint: &'static str| PublishError::Bind {
        what: format!("unix socket {}", path.display()),
        hint,
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(bind_err(
                e,
                "check that the directory exists and is readable, or set [server] unix_socket",
            ))
        }
        Ok(meta) if meta.is_dir() => {
            return Err(bind_err(
                std::io::Error::new(ErrorKind::AlreadyExists, "it is a directory"),
                "name a socket file, e.g. DIR/earshot.sock ([server] unix_socket or --socket)",
            ))
        }
        Ok(meta) if !meta.file_type().is_socket() => {
            // Never delete what is not ours: a typo in --socket must not cost a file.
            return Err(bind_err(
                std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    "a file that is not a socket is there",
                ),
                "earshotd only ever replaces a stale socket; choose another path \
                 ([server] unix_socket or --socket) or move that file away",
            ));
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(bind_err(
                    std::io::Error::new(ErrorKind::AddrInUse, "another process serves it"),
                    "is another earshotd running? stop it or set [server] unix_socket",
                ))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                // A socket left behind by a daemon that did not shut down cleanly.
                std::fs::remove_file(path).map_err(|e| {
                    bind_err(
                        e,
                        "a stale socket is in the way and cannot be removed; remove it by hand \
                         or set [server] unix_socket",
                    )
                })?;
                tracing::info!("removed the stale socket {}", path.display());
            }
            Err(e) => {
                return Err(bind_err(
                    e,
                    "cannot tell whether another process serves this socket; remove it if it \
                     is stale, or set [server] unix_socket",
                ))
            }
        },
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        bind_err(
            e,
            "check that the directory exists and is writable, or set [server] unix_socket",
        )
    })?;
    Ok((listener, file_id(path)))
}

/// Applies the configured mode and group to the socket just bound.
fn set_socket_access(
    path: &Path,
    mode: Option<u32>,
    group: Option<u32>,
) -> Result<(), PublishError> {
    let err = |source: std::io::Error, hint: &'static str| PublishError::Bind {
        what: format!("unix socket {}", path.display()),
        hint,
        source,
    };
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| {
            err(
                e,
                "cannot give the socket to [server] socket_group: the daemon's user must be a \
                 member of that group",
            )
        })?;
    }
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| err(e, "cannot set [server] socket_mode on the socket"))?;
    }
    Ok(())
}

/// Logs, loudly, that the readings leave this machine unauthenticated.
fn warn_if_exposed(addr: SocketAddr, token: bool) {
    if addr.ip().is_loopback() {
        return;
    }
    if token {
        tracing::warn!(
            "the stream server listens on {addr}, beyond this machine; clients must send \
             [server] token_file's token, but the readings travel unencrypted: prefer \
             127.0.0.1 and SSH (ssh -L 7878:127.0.0.1:7878 HOST)"
        );
    } else {
        tracing::warn!(
            "the stream server listens on {addr}, beyond this machine: anyone who can reach \
             that port can read the room's readings, and there is no authentication; keep \
             [server] tcp = \"127.0.0.1:7878\" and use SSH (ssh -L 7878:127.0.0.1:7878 HOST) \
             unless this is what you want, or set [server] token_file"
        );
    }
}

impl Server {
    /// Binds the listeners (errors name the address) and starts accepting.
    /// History requests are answered from `history_db` when there is one.
    pub fn start(
        settings: &ServerSettings,
        hello: &Hello,
        health: Arc<Counters>,
        history_db: Option<PathBuf>,
    ) -> Result<Self, PublishError> {
        let mut tcp_addr = None;
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
                warn_if_exposed(local, settings.token.is_some());
                tcp_addr = Some(local);
                Some(l)
            }
            None => None,
        };
        let mut unix_id = None;
        let unix = match &settings.unix_socket {
            Some(path) => {
                let (l, id) = bind_unix(path)?;
                unix_id = id;
                let remove = |e: PublishError| {
                    if file_id(path).is_some_and(|now| Some(now) == id) {
                        let _ = std::fs::remove_file(path);
                    }
                    e
                };
                set_socket_access(path, settings.socket_mode, settings.socket_group)
                    .map_err(remove)?;
                l.set_nonblocking(true)
                    .map_err(|source| PublishError::Bind {
                        what: format!("unix socket {}", path.display()),
                        hint: "the socket cannot be made non-blocking",
                        source,
                    })
                    .map_err(remove)?;
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
            max_clients: settings.max_clients.max(1),
            refused: AtomicU64::new(0),
            token_digest: settings.token.as_ref().map(|t| token_digest(t.expose())),
            pending: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            history_db,
            history_query: Mutex::new(()),
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
            unix_path: settings.unix_socket.clone().zip(unix_id),
            tcp_addr,
        })
    }

    /// The TCP address actually bound (port 0 in the settings picks one).
    pub fn local_tcp(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }
}

fn accept_loop(
    tcp: Option<TcpListener>,
    unix: Option<UnixListener>,
    shared: &Arc<Shared>,
    stop: &AtomicBool,
) {
    let mut unix_count = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        if let Some(l) = &tcp {
            match l.accept() {
                Ok((s, peer)) => {
                    idle = false;
                    shared.admit(Conn::Tcp(s), format!("tcp {peer}"));
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
                    shared.admit(Conn::Unix(s), format!("unix #{unix_count}"));
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

    fn publish(&mut self, p: &Published) -> Result<(), SinkError> {
        let line = &p.line;
        let mut clients = self.shared.clients();
        let before = clients.len();
        clients.retain_mut(|c| {
            if c.gone.load(Ordering::Relaxed) {
                return false;
            }
            if c.queue.try_push(Arc::clone(line)).is_err() {
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
        let mut clients = {
            let mut guard = self.shared.clients();
            self.shared.closing.store(true, Ordering::Relaxed);
            std::mem::take(&mut *guard)
        };
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
        if let Some((path, id)) = &self.unix_path {
            if file_id(path) == Some(*id) {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use earshot_protocol::{decode, MidLevel, Reading};
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

    fn reading(seq: u64) -> Reading {
        Reading {
            seq,
            time_ms: 1,
            stream_ms: 2,
            model_id: "m".into(),
            state: earshot_protocol::InputState::Silence,
            level_dbfs: -99.0,
            spectrum: vec![0.0],
            analysis: None,
            latency_ms: 0.5,
            health: Default::default(),
        }
    }

    #[test]
    fn tcp_and_unix_clients_get_hello_then_readings() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let mut settings =
            ServerSettings::new(Some("127.0.0.1:0".parse().unwrap()), Some(sock.clone()));
        settings.client_queue = 8;
        let mut server =
            Server::start(&settings, &hello(), Arc::new(Counters::default()), None).unwrap();
        let unix = UnixStream::connect(&sock).unwrap();
        let mut r = BufReader::new(unix);
        // wait for the accept loop to register the client
        let t0 = Instant::now();
        while server.shared.clients().is_empty() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        server.publish(&Published::new(reading(3))).unwrap();
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

    #[test]
    fn only_a_stale_socket_is_ever_removed() {
        let dir = tempfile::tempdir().unwrap();
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "data\n").unwrap();
        let err = bind_unix(&notes).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "data\n");
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&notes, &link).unwrap();
        assert!(bind_unix(&link).is_err(), "a symlink is not followed");
        assert!(notes.exists());
        let err = bind_unix(dir.path()).unwrap_err().to_string();
        assert!(err.contains("it is a directory"), "{err}");
        assert!(!err.contains("stale"), "{err}");
        assert!(dir.path().is_dir());
    }

    #[test]
    fn shutdown_leaves_a_socket_that_replaced_ours() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let mut server = Server::start(
            &ServerSettings::new(None, Some(sock.clone())),
            &hello(),
            Arc::new(Counters::default()),
            None,
        )
        .unwrap();
        std::fs::remove_file(&sock).unwrap();
        std::fs::write(&sock, "someone else's\n").unwrap();
        server.close().unwrap();
        assert_eq!(std::fs::read_to_string(&sock).unwrap(), "someone else's\n");
    }

    #[test]
    fn tcp_clients_must_send_the_token_when_one_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let mut settings =
            ServerSettings::new(Some("127.0.0.1:0".parse().unwrap()), Some(sock.clone()));
        settings.token = Some(Token::new("0123456789abcdef"));
        let mut server =
            Server::start(&settings, &hello(), Arc::new(Counters::default()), None).unwrap();
        let addr = server.local_tcp().unwrap();
        let first_line = |send: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(send.as_bytes()).unwrap();
            let mut line = String::new();
            let _ = BufReader::new(s).read_line(&mut line);
            line
        };
        let good = earshot_protocol::encode_auth("0123456789abcdef");
        assert!(first_line(&good).contains("\"hello\""));
        let wrong = earshot_protocol::encode_auth("0123456789abcdeX");
        assert_eq!(first_line(&wrong), "");
        assert_eq!(first_line("{\"v\":1,\"type\":\"hello\"}\n"), "");
        let t0 = Instant::now();
        assert_eq!(first_line(""), "", "a silent client is closed");
        assert!(t0.elapsed() < AUTH_TIMEOUT + Duration::from_secs(3));
        assert_eq!(server.shared.refused.load(Ordering::Relaxed), 3);
        // the unix socket is guarded by its permissions, not the token
        let mut line = String::new();
        BufReader::new(UnixStream::connect(&sock).unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("\"hello\""), "{line}");
        server.close().unwrap();
    }

    #[test]
    fn clients_beyond_the_cap_are_turned_away() {
        let mut settings = ServerSettings::new(Some("127.0.0.1:0".parse().unwrap()), None);
        settings.max_clients = 2;
        let health = Arc::new(Counters::default());
        let mut server = Server::start(&settings, &hello(), Arc::clone(&health), None).unwrap();
        let addr = server.local_tcp().unwrap();
        let mut readers: Vec<BufReader<TcpStream>> = (0..3)
            .map(|_| {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                BufReader::new(s)
            })
            .collect();
        let mut lines = Vec::new();
        for r in &mut readers {
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            lines.push(line);
        }
        assert_eq!(lines.iter().filter(|l| l.contains("hello")).count(), 2);
        assert!(
            lines[2].is_empty(),
            "the third client is closed without data"
        );
        assert_eq!(health.clients.load(Ordering::Relaxed), 2);
        assert_eq!(server.shared.refused.load(Ordering::Relaxed), 1);
        // a slot frees up when a client leaves
        drop(readers.remove(0));
        let t0 = Instant::now();
        loop {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut line = String::new();
            let _ = BufReader::new(s).read_line(&mut line);
            if line.contains("hello") {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "no slot freed up");
            // the writer notices the closed peer only when it next writes
            server.publish(&Published::new(reading(0))).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        server.close().unwrap();
    }

    #[test]
    fn history_requests_are_answered_from_the_database() {
        use crate::publish::history::{Minute, Store, N_VALUES};
        let dir = tempfile::tempdir().unwrap();
        let (sock, db) = (dir.path().join("s.sock"), dir.path().join("h.sqlite"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let hour = now - now % 3_600_000;
        let mut store = Store::open(&db).unwrap();
        for (start, music) in [(hour - 3_600_000, 60), (hour - 3_540_000, 0), (hour, 30)] {
            let mut values = [(0.5f32, 0.4f32, 0.6f32); N_VALUES];
            values[1] = (0.75, 0.7, 0.8); // energy leads
            store
                .write(&Minute {
                    start_ms: start,
                    readings: 60,
                    music,
                    level_mean_dbfs: -30.0,
                    values: (music > 0).then_some(values),
                })
                .unwrap();
        }
        let ask = |history_db: Option<PathBuf>, requests: &str| {
            let _ = std::fs::remove_file(&sock);
            let settings = ServerSettings::new(None, Some(sock.clone()));
            let health = Arc::new(Counters::default());
            let mut server = Server::start(&settings, &hello(), health, history_db).unwrap();
            let mut conn = UnixStream::connect(&sock).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            conn.write_all(requests.as_bytes()).unwrap();
            let mut lines = BufReader::new(conn).lines();
            let answer = lines
                .find_map(|l| match decode(&l.unwrap()).unwrap() {
                    Message::History(h) => Some(h),
                    _ => None,
                })
                .unwrap();
            server.close().unwrap();
            answer
        };
        let request = earshot_protocol::encode_request(&Request::History {
            span_ms: 2 * 3_600_000,
            bucket_ms: 3_600_000,
        });
        // junk first: ignored, the request after it is still answered
        let h = ask(
            Some(db.clone()),
            &format!("not a request\n\x1b]0;owned\x07\n{request}"),
        );
        assert_eq!((h.bucket_ms, h.unavailable.as_deref()), (3_600_000, None));
        assert_eq!(h.buckets.len(), 2, "{h:?}");
        assert_eq!(h.buckets[0].start_ms, (hour - 3_600_000) as u64);
        assert_eq!(h.buckets[0].readings, 120);
        assert!((h.buckets[0].music_share - 0.5).abs() < 1e-6);
        let means = h.buckets[0].means.as_ref().unwrap();
        assert_eq!(means.emotions.dominant(), "energy");
        assert!((means.mid_level.minorness - 0.5).abs() < 1e-6);
        let none = ask(None, &request);
        assert!(none.buckets.is_empty());
        assert!(none.unavailable.unwrap().contains("[history] path"));
    }
}
