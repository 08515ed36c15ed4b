//! The daemon's configuration: one serde tree read from TOML, then checked
//! once into [`Settings`] before anything starts (parse, then validate).
//!
//! Every table denies unknown keys, and every error names `file:line:column` and the
//! field. Command-line flags are applied to the parsed tree before validation,
//! so they are checked by the same code. Units are in field names.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::publish::{self, SinkSettings};

/// Default readings cadence.
pub const DEFAULT_HOP_MS: u32 = 1000;
/// Default smoothing time constant of published values.
pub const DEFAULT_SMOOTHING_MS: u32 = 3000;
/// Default music/silence threshold on the hop's RMS level.
pub const DEFAULT_SILENCE_DBFS: f32 = -60.0;

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
    #[error("{}: {message}", location(.origin, *.at))]
    Parse {
        origin: String,
        /// 1-based line and column.
        at: Option<(usize, usize)>,
        message: String,
    },
    #[error("{}: {field} = {value}: {message}", location(.origin, *.at))]
    Invalid {
        origin: String,
        /// 1-based line and column of the key.
        at: Option<(usize, usize)>,
        field: &'static str,
        value: String,
        message: String,
    },
}

/// `file:line:column`, as compilers and editors write it.
fn location(origin: &str, at: Option<(usize, usize)>) -> String {
    match at {
        Some((line, column)) => format!("{origin}:{line}:{column}"),
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
    pub watchdog: WatchdogConfig,
    // Outputs: each sink owns its table's schema and checks (crate::publish).
    pub server: publish::server::ServerConfig,
    pub stdout: publish::stdout::StdoutConfig,
    pub mqtt: publish::mqtt::MqttConfig,
    pub osc: publish::osc::OscConfig,
    pub history: publish::history::HistoryConfig,
    pub lights: crate::lights::LightsConfig,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    Int8,
}

/// `[model] precision`: a fixed precision, or `auto`: int8 on the CPUs where
/// the model's metadata says its int8 plan was measured cheaper, else f32
/// (`model::precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PrecisionChoice {
    #[default]
    Auto,
    F32,
    Int8,
}

impl From<Precision> for PrecisionChoice {
    fn from(p: Precision) -> Self {
        match p {
            Precision::F32 => PrecisionChoice::F32,
            Precision::Int8 => PrecisionChoice::Int8,
        }
    }
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
    pub precision: PrecisionChoice,
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

/// `[watchdog]`: an input that stops delivering audio is restarted, and
/// earshotd gives up (exits with an error) when restarts do not help.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogConfig {
    /// No audio this long from an open input: alarm, then restart the capture.
    pub stall_s: u32,
    /// Restarts (after a loss or a stall) allowed within `restart_window_s`;
    /// one more and earshotd exits with an error, for systemd to restart it.
    pub max_restarts: u32,
    pub restart_window_s: u32,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        let d = crate::capture::WatchdogSettings::default();
        Self {
            stall_s: d.stall.as_secs() as u32,
            max_restarts: d.max_restarts,
            restart_window_s: d.window.as_secs() as u32,
        }
    }
}

/// Validated, ready-to-use settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub source: SourceConfig,
    pub model_dir: Option<PathBuf>,
    pub precision: PrecisionChoice,
    pub analysis: AnalysisSettings,
    pub ring_ms: u32,
    pub watchdog: crate::capture::WatchdogSettings,
    /// The enabled outputs, in the order they are built.
    pub outputs: Vec<SinkSettings>,
}

impl Settings {
    /// The stream server's settings, if it is enabled.
    pub fn server(&self) -> Option<&publish::server::ServerSettings> {
        self.outputs.iter().find_map(|o| match o {
            SinkSettings::Server(s) => Some(s),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisSettings {
    pub hop_ms: u32,
    pub window_ms: Option<u32>,
    pub smoothing_ms: u32,
    pub silence_dbfs: f32,
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
            at: e.span().map(|s| position(text, s.start)),
            message: e.message().trim().replace('\n', " "),
        })?;
        Ok(Self {
            config,
            origin: origin.to_string(),
            text: text.to_string(),
        })
    }

    fn check(&self) -> Check<'_> {
        Check {
            origin: &self.origin,
            text: &self.text,
        }
    }

    fn invalid(
        &self,
        section: &str,
        key: &'static str,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> ConfigError {
        self.check().invalid(section, key, value, message)
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
        let w = &c.watchdog;
        if !(1..=3600).contains(&w.stall_s) {
            return Err(self.invalid(
                "watchdog",
                "stall_s",
                w.stall_s,
                "must be between 1 and 3600 (the default is 30)",
            ));
        }
        if w.max_restarts > 1000 {
            return Err(self.invalid(
                "watchdog",
                "max_restarts",
                w.max_restarts,
                "must be at most 1000 (the default is 5; 0 gives up at the first loss)",
            ));
        }
        if !(1..=86_400).contains(&w.restart_window_s) {
            return Err(self.invalid(
                "watchdog",
                "restart_window_s",
                w.restart_window_s,
                "must be between 1 and 86400 (the default is 600)",
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
        let check = self.check();
        let mut outputs = Vec::new();
        outputs.extend(c.server.validate(&check)?.map(SinkSettings::Server));
        outputs.extend(c.stdout.validate(&check)?);
        outputs.extend(c.mqtt.validate(&check)?.map(SinkSettings::Mqtt));
        outputs.extend(c.osc.validate(&check)?);
        outputs.extend(c.history.validate(&check)?);
        outputs.extend(
            c.lights
                .validate(&check)?
                .map(|l| SinkSettings::Lights(Box::new(l))),
        );
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
            watchdog: crate::capture::WatchdogSettings {
                stall: std::time::Duration::from_secs(u64::from(w.stall_s)),
                max_restarts: w.max_restarts,
                window: std::time::Duration::from_secs(u64::from(w.restart_window_s)),
            },
            outputs,
        })
    }
}

/// Where a config came from, for the checks each table makes of itself:
/// errors name `file:line:column` and the key.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Check<'_> {
    /// `[section] key = value` cannot be used, and `message` says why.
    pub fn invalid(
        &self,
        section: &str,
        key: &'static str,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_string(),
            at: locate(self.text, section, key),
            field: key,
            value: value.to_string(),
            message: message.into(),
        }
    }
}

/// Most of a secret file (token, password) that is read: its first line.
const SECRET_FILE_MAX: u64 = 4096;

/// The first line of a small file holding a secret, without its line end.
/// Reads at most 4 KiB, so that a wrong path (a log, `/dev/zero`) fails
/// instead of filling memory. Errors say what to do, without the content.
pub fn read_secret_line(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(SECRET_FILE_MAX + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read it: {e}"))?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
    if line.len() as u64 > SECRET_FILE_MAX {
        return Err(format!(
            "its first line is longer than {SECRET_FILE_MAX} bytes: is it the right file?"
        ));
    }
    String::from_utf8(line.to_vec())
        .map(|l| l.trim_end_matches('\r').to_string())
        .map_err(|_| "its first line is not UTF-8 text".to_string())
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Line and column of `key = ...` inside `[section]`, if the file sets it.
fn locate(text: &str, section: &str, key: &str) -> Option<(usize, usize)> {
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
            let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
            return Some((i + 1, indent + 1));
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
        assert!(settings.server().is_some());
    }

    #[test]
    fn defaults_are_demo_with_server_on_7878() {
        let s = Loaded::defaults().validate().unwrap();
        assert_eq!(s.source, SourceConfig::Demo {});
        assert_eq!(s.precision, PrecisionChoice::Auto);
        let server = s.server().unwrap();
        assert_eq!(server.tcp, Some("127.0.0.1:7878".parse().unwrap()));
        assert!(server.unix_socket.is_some());
        assert_eq!(s.outputs.len(), 1, "only the server: {:?}", s.outputs);
    }

    #[test]
    fn secret_files_are_read_a_line_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "s3cret-token-0123\r\nnext line\n").unwrap();
        assert_eq!(read_secret_line(&f).unwrap(), "s3cret-token-0123");
        std::fs::write(&f, vec![b'x'; 10_000]).unwrap();
        assert!(read_secret_line(&f)
            .unwrap_err()
            .contains("longer than 4096 bytes"));
        // a device that never ends is not read to its end
        let err = read_secret_line(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        let err = read_secret_line(&dir.path().join("none")).unwrap_err();
        assert!(err.starts_with("cannot read it: "), "{err}");
    }

    #[test]
    fn unknown_field_names_file_line_and_alternatives() {
        let text = "[analysis]\nhop_ms = 500\n\n[server]\nhots = \"x\"\n";
        let err = Loaded::parse(text, "earshot.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("earshot.toml:5:1: unknown field `hots`"),
            "{err}"
        );
        assert!(err.contains("client_queue"), "{err}");
        // the column points into the line, counted in characters
        let text = "[analysis]\n  hop_ms = \"é\"\n";
        let err = Loaded::parse(text, "e.toml").unwrap_err().to_string();
        assert!(err.starts_with("e.toml:2:12: "), "{err}");
        let text = "[analysis]\n  hop_ms = 0\n";
        let err = Loaded::parse(text, "e.toml")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().starts_with("e.toml:2:3: hop_ms = 0"),
            "{err}"
        );
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
            err.starts_with("e.toml:4:1: hop_ms = 0: must be between"),
            "{err}"
        );
    }

    #[test]
    fn watchdog_defaults_and_limits() {
        let s = Loaded::defaults().validate().unwrap();
        assert_eq!(s.watchdog, crate::capture::WatchdogSettings::default());
        assert_eq!(s.watchdog.stall.as_secs(), 30);
        let l = Loaded::parse("[watchdog]\nstall_s = 2\nmax_restarts = 0\n", "t").unwrap();
        let w = l.validate().unwrap().watchdog;
        assert_eq!(
            (w.stall.as_secs(), w.max_restarts, w.window.as_secs()),
            (2, 0, 600)
        );
        let err = Loaded::parse("[watchdog]\nstall_s = 0\n", "e.toml")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("e.toml:2:"), "{err}");
        assert!(err.contains(": stall_s = 0: must be between 1"), "{err}");
        let err = Loaded::parse("[watchdog]\nstall = 3\n", "e.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `stall`") && err.contains("stall_s"),
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
}
