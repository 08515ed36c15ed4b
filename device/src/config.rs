//! The daemon's configuration: one serde tree read from TOML, then checked
//! once into [`Settings`] before anything starts (parse, then validate).
//!
//! Every table denies unknown keys, and every error names `file:line` and the
//! field. Command-line flags are applied to the parsed tree before validation,
//! so they are checked by the same code. Units are in field names.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default readings cadence.
pub const DEFAULT_HOP_MS: u32 = 1000;
/// Default smoothing time constant of published values.
pub const DEFAULT_SMOOTHING_MS: u32 = 3000;
/// Default music/silence threshold on the hop's RMS level.
pub const DEFAULT_SILENCE_DBFS: f32 = -60.0;
/// Readings a stream client may fall behind before it is dropped.
pub const DEFAULT_CLIENT_QUEUE: usize = 64;
/// Stream clients served at once; more are turned away (each costs a thread).
pub const DEFAULT_MAX_CLIENTS: usize = 64;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading config {path}: {source}; pass an existing file with --config")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", location(.origin, *.line))]
    Parse {
        origin: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: {field} = {value}: {message}", location(.origin, *.line))]
    Invalid {
        origin: String,
        line: Option<usize>,
        field: &'static str,
        value: String,
        message: String,
    },
}

fn location(origin: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{origin}:{line}"),
        None => origin.to_string(),
    }
}

/// The raw tree, as written in `earshot.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub model: ModelConfig,
    pub analysis: AnalysisConfig,
    pub capture: CaptureConfig,
    pub server: ServerConfig,
    pub stdout: StdoutConfig,
}

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// The built-in synthesised music (paced in real time).
    Demo {},
    /// An audio file (wav, flac, mp3, ogg).
    File {
        path: PathBuf,
        /// Pace like live audio instead of as fast as possible.
        #[serde(default)]
        realtime: bool,
    },
    /// A live input device (ALSA through cpal); see `earshotd devices`.
    Device {
        #[serde(default = "default_device")]
        name: String,
    },
}

fn default_device() -> String {
    "default".into()
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Demo {}
    }
}

/// Numeric precision of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    Int8,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A model directory (metadata.json, model.onnx, model.int8.onnx); default: built in.
    pub dir: Option<PathBuf>,
    pub precision: Precision,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    /// Readings cadence; rounded to whole front-end frames (31.93 ms each).
    pub hop_ms: u32,
    /// Audio per reading; default: the model's training window (313 frames, 10 s).
    pub window_ms: Option<u32>,
    /// Time constant of the exponential smoothing of published values (0 = none).
    pub smoothing_ms: u32,
    /// A hop quieter than this (RMS, dBFS) is silence; music resumes 3 dB above it.
    pub silence_dbfs: f32,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            hop_ms: DEFAULT_HOP_MS,
            window_ms: None,
            smoothing_ms: DEFAULT_SMOOTHING_MS,
            silence_dbfs: DEFAULT_SILENCE_DBFS,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Capacity of the lock-free ring between the audio callback and the pipeline.
    pub ring_ms: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self { ring_ms: 2000 }
    }
}

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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutConfig {
    /// Write NDJSON (hello, then readings) to standard output.
    pub enabled: bool,
}

/// Validated, ready-to-use settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub source: SourceConfig,
    pub model_dir: Option<PathBuf>,
    pub precision: Precision,
    pub analysis: AnalysisSettings,
    pub ring_ms: u32,
    pub server: Option<ServerSettings>,
    pub stdout: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisSettings {
    pub hop_ms: u32,
    pub window_ms: Option<u32>,
    pub smoothing_ms: u32,
    pub silence_dbfs: f32,
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

/// A parsed config with the text it came from, for error locations.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    origin: String,
    text: String,
}

impl Loaded {
    /// Defaults only (no file).
    pub fn defaults() -> Self {
        Self {
            config: Config::default(),
            origin: "defaults".into(),
            text: String::new(),
        }
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().trim().replace('\n', " "),
        })?;
        Ok(Self {
            config,
            origin: origin.to_string(),
            text: text.to_string(),
        })
    }

    fn invalid(
        &self,
        section: &str,
        key: &'static str,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.clone(),
            line: locate(&self.text, section, key),
            field: key,
            value: value.to_string(),
            message: message.into(),
        }
    }

    /// Checks every value once and builds the runtime settings.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let c = &self.config;
        let a = &c.analysis;
        if !(10..=60_000).contains(&a.hop_ms) {
            return Err(self.invalid(
                "analysis",
                "hop_ms",
                a.hop_ms,
                "must be between 10 and 60000 (the default is 1000)",
            ));
        }
        if let Some(w) = a.window_ms {
            if !(2_000..=600_000).contains(&w) {
                return Err(self.invalid(
                    "analysis",
                    "window_ms",
                    w,
                    "must be between 2000 (the model's receptive field) and 600000; \
                     leave it out to use the model's training window",
                ));
            }
        }
        if a.smoothing_ms > 600_000 {
            return Err(self.invalid(
                "analysis",
                "smoothing_ms",
                a.smoothing_ms,
                "must be at most 600000 (0 disables smoothing)",
            ));
        }
        if !a.silence_dbfs.is_finite() || !(-120.0..=0.0).contains(&a.silence_dbfs) {
            return Err(self.invalid(
                "analysis",
                "silence_dbfs",
                a.silence_dbfs,
                "must be between -120 and 0 dBFS (the default is -60)",
            ));
        }
        if !(100..=60_000).contains(&c.capture.ring_ms) {
            return Err(self.invalid(
                "capture",
                "ring_ms",
                c.capture.ring_ms,
                "must be between 100 and 60000",
            ));
        }
        match &c.source {
            SourceConfig::File { path, .. } if path.as_os_str().is_empty() => {
                return Err(self.invalid("source", "path", "\"\"", "name an audio file"));
            }
            SourceConfig::Device { name, .. } if name.trim().is_empty() => {
                return Err(self.invalid(
                    "source",
                    "name",
                    "\"\"",
                    "name an input device (see `earshotd devices`) or \"default\"",
                ));
            }
            _ => {}
        }
        let server = if c.server.enabled {
            let s = &c.server;
            let tcp = if s.tcp.trim().is_empty() {
                None
            } else {
                Some(s.tcp.trim().parse::<SocketAddr>().map_err(|_| {
                    self.invalid(
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
                return Err(self.invalid(
                    "server",
                    "client_queue",
                    s.client_queue,
                    "must be between 1 and 100000",
                ));
            }
            if s.max_clients == 0 || s.max_clients > 10_000 {
                return Err(self.invalid(
                    "server",
                    "max_clients",
                    s.max_clients,
                    "must be between 1 and 10000 (each client costs a thread)",
                ));
            }
            let socket_mode = match &s.socket_mode {
                None => None,
                Some(text) => Some(parse_mode(text).ok_or_else(|| {
                    self.invalid(
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
                    self.invalid("server", "socket_group", format!("{name:?}"), why)
                })?),
            };
            let token = match &s.token_file {
                None => None,
                Some(path) => Some(read_token(path).map_err(|why| {
                    self.invalid("server", "token_file", format!("{:?}", path.display()), why)
                })?),
            };
            if tcp.is_none() && unix_socket.is_none() {
                None
            } else {
                Some(ServerSettings {
                    tcp,
                    unix_socket,
                    client_queue: s.client_queue,
                    send_buffer_bytes: s.send_buffer_bytes,
                    max_clients: s.max_clients,
                    socket_mode,
                    socket_group,
                    token,
                })
            }
        } else {
            None
        };
        Ok(Settings {
            source: c.source.clone(),
            model_dir: c.model.dir.clone(),
            precision: c.model.precision,
            analysis: AnalysisSettings {
                hop_ms: a.hop_ms,
                window_ms: a.window_ms,
                smoothing_ms: a.smoothing_ms,
                silence_dbfs: a.silence_dbfs,
            },
            ring_ms: c.capture.ring_ms,
            server,
            stdout: c.stdout.enabled,
        })
    }
}

/// The token in `path`: its first line, trimmed, at least [`MIN_TOKEN_CHARS`] long.
fn read_token(path: &Path) -> Result<Token, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let token = text.lines().next().unwrap_or("").trim();
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

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Line of `key = ...` inside `[section]`, if the file sets it.
fn locate(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
            continue;
        }
        let Some((k, _)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if (current == section && k == key)
            || (current.is_empty() && k == format!("{section}.{key}"))
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_in_deploy_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/earshot.toml");
        let settings = Loaded::from_file(&path).unwrap().validate().unwrap();
        assert_eq!(settings.analysis.hop_ms, 1000);
        assert!(settings.server.is_some());
    }

    #[test]
    fn defaults_are_demo_with_server_on_7878() {
        let s = Loaded::defaults().validate().unwrap();
        assert_eq!(s.source, SourceConfig::Demo {});
        assert_eq!(s.precision, Precision::F32);
        let server = s.server.unwrap();
        assert_eq!(server.tcp, Some("127.0.0.1:7878".parse().unwrap()));
        assert!(server.unix_socket.is_some());
        assert!(!s.stdout);
    }

    #[test]
    fn unknown_field_names_file_line_and_alternatives() {
        let text = "[analysis]\nhop_ms = 500\n\n[server]\nhots = \"x\"\n";
        let err = Loaded::parse(text, "earshot.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("earshot.toml:5: unknown field `hots`"),
            "{err}"
        );
        assert!(err.contains("client_queue"), "{err}");
    }

    #[test]
    fn invalid_value_names_file_line_and_field() {
        let text = "# c\n[analysis]\nsmoothing_ms = 10\nhop_ms = 0\n";
        let err = Loaded::parse(text, "e.toml")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("e.toml:4: hop_ms = 0: must be between"),
            "{err}"
        );
    }

    #[test]
    fn source_variants_parse() {
        let l = Loaded::parse(
            "[source]\nkind = \"file\"\npath = \"a.flac\"\nrealtime = true\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            l.config.source,
            SourceConfig::File {
                path: "a.flac".into(),
                realtime: true
            }
        );
        let l = Loaded::parse("[source]\nkind = \"device\"\n", "t").unwrap();
        assert_eq!(
            l.config.source,
            SourceConfig::Device {
                name: "default".into()
            }
        );
        let err = Loaded::parse("[source]\nkind = \"demo\"\npath = \"x\"\n", "t").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = Loaded::parse("[model]\nprecision = \"int4\"\n", "t").unwrap_err();
        assert!(err.to_string().starts_with("t:2:"), "{err}");
    }

    #[test]
    fn socket_mode_and_group_are_checked() {
        let s = Loaded::parse(
            "[server]\nsocket_mode = \"0660\"\nsocket_group = \"0\"\n",
            "t",
        )
        .unwrap()
        .validate()
        .unwrap()
        .server
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
            err.starts_with("t:2: socket_mode = \"rw\": not an octal"),
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
        let token = s.server.unwrap().token.unwrap();
        assert_eq!(token.expose(), "0123456789abcdef0123");
        assert_eq!(format!("{token:?}"), "Token(..)");
        let err = Loaded::parse(&cfg(&short), "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t:2: token_file = "), "{err}");
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
        assert!(err.starts_with("t:2: max_clients = 0"), "{err}");
        let s = Loaded::defaults().validate().unwrap().server.unwrap();
        assert_eq!(s.max_clients, DEFAULT_MAX_CLIENTS);
    }

    #[test]
    fn bad_tcp_address_and_disabling() {
        let err = Loaded::parse("[server]\ntcp = \"localhost\"\n", "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t:2: tcp = \"localhost\""), "{err}");
        let s = Loaded::parse("[server]\ntcp = \"\"\nunix_socket = \"\"\n", "t")
            .unwrap()
            .validate()
            .unwrap();
        assert!(s.server.is_none());
    }
}
