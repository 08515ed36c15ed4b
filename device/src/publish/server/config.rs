//! The stream server's part of the config: `[server]` as written, checked
//! once into [`ServerSettings`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{Check, ConfigError};

/// Readings a stream client may fall behind before it is dropped.
pub const DEFAULT_CLIENT_QUEUE: usize = 64;
/// Stream clients served at once; more are turned away (each costs a thread).
pub const DEFAULT_MAX_CLIENTS: usize = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Serve readings at all.
    pub enabled: bool,
    /// TCP listen address; empty disables TCP.
    pub tcp: String,
    /// Unix socket path; empty disables it. Default `$XDG_RUNTIME_DIR/earshot.sock`
    /// or `/tmp/earshot.sock`.
    pub unix_socket: Option<PathBuf>,
    /// Readings a client may fall behind before it is dropped.
    pub client_queue: usize,
    /// Kernel send buffer per client (0 = the OS default).
    pub send_buffer_bytes: usize,
    /// Clients served at once (TCP and unix together); more are turned away.
    pub max_clients: usize,
    /// Permissions of the unix socket, octal (e.g. "0660"); default: as the umask makes them.
    pub socket_mode: Option<String>,
    /// Group of the unix socket: a name from /etc/group or a numeric gid.
    pub socket_group: Option<String>,
    /// A file holding a token TCP clients must send first (see docs/protocol.md).
    pub token_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tcp: format!("127.0.0.1:{}", earshot_protocol::DEFAULT_PORT),
            unix_socket: None,
            client_queue: DEFAULT_CLIENT_QUEUE,
            send_buffer_bytes: 0,
            max_clients: DEFAULT_MAX_CLIENTS,
            socket_mode: None,
            socket_group: None,
            token_file: None,
        }
    }
}

impl ServerConfig {
    /// The server's settings, or `None` when it serves nowhere.
    pub fn validate(&self, check: &Check) -> Result<Option<ServerSettings>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let s = self;
        let tcp = if s.tcp.trim().is_empty() {
            None
        } else {
            Some(s.tcp.trim().parse::<SocketAddr>().map_err(|_| {
                check.invalid(
                    "server",
                    "tcp",
                    format!("{:?}", s.tcp),
                    "not an address like \"127.0.0.1:7878\" (empty disables TCP)",
                )
            })?)
        };
        let unix_socket = match &s.unix_socket {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => Some(default_unix_socket()),
        };
        if s.client_queue == 0 || s.client_queue > 100_000 {
            return Err(check.invalid(
                "server",
                "client_queue",
                s.client_queue,
                "must be between 1 and 100000",
            ));
        }
        if s.max_clients == 0 || s.max_clients > 10_000 {
            return Err(check.invalid(
                "server",
                "max_clients",
                s.max_clients,
                "must be between 1 and 10000 (each client costs a thread)",
            ));
        }
        let socket_mode = match &s.socket_mode {
            None => None,
            Some(text) => Some(parse_mode(text).ok_or_else(|| {
                check.invalid(
                    "server",
                    "socket_mode",
                    format!("{text:?}"),
                    "not an octal permission like \"0660\" (owner and group may connect)",
                )
            })?),
        };
        let socket_group = match &s.socket_group {
            None => None,
            Some(name) => Some(lookup_group(name).map_err(|why| {
                check.invalid("server", "socket_group", format!("{name:?}"), why)
            })?),
        };
        let token = match &s.token_file {
            None => None,
            Some(path) => Some(read_token(path).map_err(|why| {
                check.invalid("server", "token_file", format!("{:?}", path.display()), why)
            })?),
        };
        if tcp.is_none() && unix_socket.is_none() {
            return Ok(None);
        }
        Ok(Some(ServerSettings {
            tcp,
            unix_socket,
            client_queue: s.client_queue,
            send_buffer_bytes: s.send_buffer_bytes,
            max_clients: s.max_clients,
            socket_mode,
            socket_group,
            token,
        }))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub tcp: Option<SocketAddr>,
    pub unix_socket: Option<PathBuf>,
    pub client_queue: usize,
    pub send_buffer_bytes: usize,
    pub max_clients: usize,
    /// Permission bits for the unix socket (`None`: as the umask leaves them).
    pub socket_mode: Option<u32>,
    /// Group id for the unix socket (`None`: the daemon's group).
    pub socket_group: Option<u32>,
    /// The token TCP clients must send first (`None`: none needed).
    pub token: Option<Token>,
}

/// Shortest token accepted: 16 characters (e.g. `openssl rand -hex 16` gives 32).
pub const MIN_TOKEN_CHARS: usize = 16;

/// A shared secret; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl ServerSettings {
    /// Loopback TCP and a unix socket, with the defaults; for tests and embedding.
    pub fn new(tcp: Option<SocketAddr>, unix_socket: Option<PathBuf>) -> Self {
        Self {
            tcp,
            unix_socket,
            client_queue: DEFAULT_CLIENT_QUEUE,
            send_buffer_bytes: 0,
            max_clients: DEFAULT_MAX_CLIENTS,
            socket_mode: None,
            socket_group: None,
            token: None,
        }
    }
}

/// The default unix socket path: `$XDG_RUNTIME_DIR/earshot.sock`, else `/tmp/earshot.sock`.
pub fn default_unix_socket() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("earshot.sock"),
        _ => PathBuf::from("/tmp/earshot.sock"),
    }
}

/// The token in `path`: its first line, trimmed, at least [`MIN_TOKEN_CHARS`] long.
fn read_token(path: &Path) -> Result<Token, String> {
    let line = crate::config::read_secret_line(path)?;
    let token = line.trim();
    if token.chars().count() < MIN_TOKEN_CHARS {
        return Err(format!(
            "its first line must hold a token of at least {MIN_TOKEN_CHARS} characters \
             (e.g. `openssl rand -hex 16 > FILE`)"
        ));
    }
    Ok(Token::new(token))
}

/// Octal permission bits: "0660", "660" or "0o660", at most 0o777.
fn parse_mode(text: &str) -> Option<u32> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
}

/// A group's id: a number as is, a name from `/etc/group`.
fn lookup_group(name: &str) -> Result<u32, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("name a group (e.g. \"earshot\") or a numeric gid".into());
    }
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group")
        .map_err(|e| format!("cannot read /etc/group ({e}); give the numeric gid instead"))?;
    group_in(&groups, name).ok_or_else(|| {
        format!(
            "no such group in /etc/group; create it (`sudo groupadd {name}`) or give a numeric gid"
        )
    })
}

/// The gid of `name` in the text of an `/etc/group` file.
fn group_in(groups: &str, name: &str) -> Option<u32> {
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        let n = fields.next()?;
        let _password = fields.next()?;
        let gid = fields.next()?;
        (n == name).then(|| gid.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loaded;

    #[test]
    fn socket_mode_and_group_are_checked() {
        let s = Loaded::parse(
            "[server]\nsocket_mode = \"0660\"\nsocket_group = \"0\"\n",
            "t",
        )
        .unwrap()
        .validate()
        .unwrap()
        .server()
        .cloned()
        .unwrap();
        assert_eq!((s.socket_mode, s.socket_group), (Some(0o660), Some(0)));
        assert_eq!(parse_mode("660"), Some(0o660));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        assert_eq!(parse_mode("0888"), None);
        assert_eq!(parse_mode("1777"), None);
        let err = Loaded::parse("[server]\nsocket_mode = \"rw\"\n", "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t:2:1: socket_mode = \"rw\": not an octal"),
            "{err}"
        );
        let err = Loaded::parse("[server]\nsocket_group = \"no-such-group-x\"\n", "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such group"), "{err}");
        let etc = "root:x:0:\nearshot:x:997:pi\n";
        assert_eq!(group_in(etc, "earshot"), Some(997));
        assert_eq!(group_in(etc, "earsho"), None);
    }

    #[test]
    fn token_file_is_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("earshot-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let cfg = |p: &Path| format!("[server]\ntoken_file = {:?}\n", p.display().to_string());
        let s = Loaded::parse(&cfg(&good), "t").unwrap().validate().unwrap();
        let token = s.server().unwrap().token.clone().unwrap();
        assert_eq!(token.expose(), "0123456789abcdef0123");
        assert_eq!(format!("{token:?}"), "Token(..)");
        let err = Loaded::parse(&cfg(&short), "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t:2:1: token_file = "), "{err}");
        assert!(err.contains("at least 16 characters"), "{err}");
        assert!(!err.contains("abc"), "the token is not shown: {err}");
        let err = Loaded::parse(&cfg(&dir.join("missing")), "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read it"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn max_clients_is_bounded() {
        let err = Loaded::parse("[server]\nmax_clients = 0\n", "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t:2:1: max_clients = 0"), "{err}");
        let s = Loaded::defaults().validate().unwrap();
        let s = s.server().unwrap();
        assert_eq!(s.max_clients, DEFAULT_MAX_CLIENTS);
    }

    #[test]
    fn bad_tcp_address_and_disabling() {
        let err = Loaded::parse("[server]\ntcp = \"localhost\"\n", "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t:2:1: tcp = \"localhost\""), "{err}");
        let s = Loaded::parse("[server]\ntcp = \"\"\nunix_socket = \"\"\n", "t")
            .unwrap()
            .validate()
            .unwrap();
        assert!(s.server().is_none());
    }
}
