//! The earshot readings protocol: what the daemon (`earshotd`) says and every
//! consumer (the console, recorders, MQTT bridges, tests) reads.
//!
//! The wire format is NDJSON: one JSON object per line, UTF-8, `\n`-terminated.
//! Every object carries `"v"` (the protocol version, [`VERSION`]) and `"type"`:
//!
//! * `hello`: sent once when a stream opens (and at the top of `--stdout`);
//!   says which daemon, model and source produced the readings that follow.
//! * `reading`: one per hop (default 1 s), in order, with a sequence number.
//! * `history`: the daemon's answer to a client's history request ([`history`]).
//!
//! A decoder checks `v` before anything else: a version it does not know is
//! [`DecodeError::UnsupportedVersion`], never a half-parsed reading.
//!
//! ## Scales (the same everywhere)
//! * emotions: `0..1` over the Soundtracks rating scale, `(rating - 1) / 8`, so
//!   0 is "not at all" (1 on the 1..9 scale) and 1 is "extremely" (9).
//! * mid-level features: `0..1`, the quantile of the model's proxy target among the
//!   360 Soundtracks clips (0.8 = more than 80 % of the film-music clips).
//! * explanation: `emotion = bias + sum(effects)`, `effect = w * (m - mean_m)`;
//!   exact for every reading (smoothing is applied to mid-level values, and the
//!   linear layer is applied after it).
//! * levels in dBFS (0 = full scale), times in milliseconds since the Unix epoch.
//!
//! This crate is the shared contract and stays small: serde and thiserror only.

use serde::{Deserialize, Serialize};

pub mod history;
pub use history::{decode_request, encode_request, History, HistoryBucket, Request};

/// The protocol version this crate writes and reads.
pub const VERSION: u32 = 1;

/// Default TCP port of the daemon's readings stream (on 127.0.0.1).
pub const DEFAULT_PORT: u16 = 7878;

/// Defines a struct with one named field per item, with array conversion in
/// the documented output order, so that names never drift from indices.
macro_rules! named_array {
    ($(#[$meta:meta])* $name:ident, $len:literal, [$($field:ident),+ $(,)?]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name<T> {
            $(pub $field: T,)+
        }

        impl<T: Copy> $name<T> {
            /// Field names in output order.
            pub const NAMES: [&'static str; $len] = [$(stringify!($field)),+];
            /// Number of fields.
            pub const LEN: usize = $len;

            /// Builds from values in output order.
            pub fn from_array(values: [T; $len]) -> Self {
                let [$($field),+] = values;
                Self { $($field),+ }
            }

            /// Values in output order.
            pub fn to_array(&self) -> [T; $len] {
                [$(self.$field),+]
            }

            /// Applies `f` to every value, keeping names.
            pub fn map<U: Copy>(&self, mut f: impl FnMut(T) -> U) -> $name<U> {
                $name { $($field: f(self.$field)),+ }
            }

            /// `(name, value)` pairs in output order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, T)> {
                Self::NAMES.into_iter().zip(self.to_array())
            }
        }
    };
}

named_array!(
    /// The 7 mid-level perceptual features (Aljanaki & Soleymani 2018), in model output order.
    MidLevel,
    7,
    [
        melodiousness,
        articulation,
        rhythm_stability,
        rhythm_complexity,
        dissonance,
        tonal_stability,
        minorness,
    ]
);

named_array!(
    /// The 8 emotions of the Soundtracks ratings (Eerola & Vuoskoski 2011), in model output order.
    Emotions,
    8,
    [valence, energy, tension, anger, fear, happy, sad, tender]
);

impl Emotions<f32> {
    /// The name of the highest value (the first of equal ones).
    pub fn dominant(&self) -> &'static str {
        self.iter()
            .fold(("", f32::NEG_INFINITY), |best, (n, v)| {
                if v > best.1 {
                    (n, v)
                } else {
                    best
                }
            })
            .0
    }
}

/// First message of every stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// `earshotd` version that writes the stream.
    pub daemon: String,
    /// Model id (directory name under `models/`, hash-suffixed).
    pub model_id: String,
    /// Where the audio comes from, e.g. `demo`, `file:/path/x.wav`, `alsa:USB Mic`.
    pub source: String,
    /// Readings cadence.
    pub hop_ms: u32,
    /// Audio the model looks at for each reading.
    pub window_ms: u32,
    /// Time constant of the smoothing applied to published values (0 = none).
    pub smoothing_ms: u32,
    /// Mean mid-level value of the training data, the zero point of the effects.
    pub mid_level_means: MidLevel<f32>,
}

/// Whether the input carried music the model can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputState {
    /// Loud enough and the model ran: `analysis` is present.
    Music,
    /// Below the music gate: no emotions are claimed, `analysis` is null.
    Silence,
    /// Not enough audio yet to fill the model's receptive field.
    Warmup,
}

/// Why one emotion has its value: `value = bias + sum(effects)`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explanation {
    /// The emotion's value at average mid-level features.
    pub bias: f32,
    /// Signed contribution of each mid-level feature, `w * (m - mean)`.
    pub effects: MidLevel<f32>,
}

impl Explanation {
    /// `bias + sum(effects)`: equals the explained emotion value.
    pub fn total(&self) -> f32 {
        self.bias + self.effects.to_array().iter().sum::<f32>()
    }
}

/// Model values of one reading.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    pub mid_level: MidLevel<f32>,
    pub emotions: Emotions<f32>,
}

impl Values {
    /// The 8 emotions then the 7 mid-level values, as `value(0..15)` gives them
    /// (the order of the history database's columns and of the merged means).
    pub fn from_fn(mut value: impl FnMut(usize) -> f32) -> Self {
        let emotions = Emotions::from_array(std::array::from_fn(&mut value));
        let mid_level =
            MidLevel::from_array(std::array::from_fn(|i| value(Emotions::<f32>::LEN + i)));
        Self {
            mid_level,
            emotions,
        }
    }
}

/// What the model made of the audio window, present when the input is music.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Smoothed, published values.
    pub mid_level: MidLevel<f32>,
    pub emotions: Emotions<f32>,
    /// Per emotion, exactly how the smoothed mid-level values produce it.
    pub explanation: Emotions<Explanation>,
    /// This window's values before smoothing.
    pub raw: Values,
    /// False when the window lies outside what the model was trained on (its
    /// mean embedding is farther from the training windows' than 99 % of them:
    /// speech, a test tone, noise, music unlike any it learned): the numbers
    /// are then a guess. Absent (true) from daemons before 0.2.
    #[serde(default = "in_range_default")]
    pub in_range: bool,
    /// That distance (RMS of the embedding's z-scores against the training
    /// windows); null when the model records no statistics.
    #[serde(default)]
    pub novelty: Option<f32>,
}

fn in_range_default() -> bool {
    true
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            mid_level: MidLevel::default(),
            emotions: Emotions::default(),
            explanation: Emotions::default(),
            raw: Values::default(),
            in_range: true,
            novelty: None,
        }
    }
}

/// What an output is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputState {
    /// Built, nothing delivered yet (e.g. still connecting).
    #[default]
    Starting,
    /// The last delivery worked.
    Ok,
    /// The last delivery failed; it is being retried.
    Retrying,
    /// Unreachable for now (e.g. the broker is down); it reconnects by itself.
    Down,
    /// Gone for good without fault (e.g. stdout's reader went away).
    Closed,
    /// Broken for good (e.g. a full disk); the daemon stops on it.
    Failed,
    /// A state this reader does not know (a newer daemon).
    #[serde(other)]
    Unknown,
}

/// One output's state and totals (a sink, or one part of one, e.g. one lighting protocol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputHealth {
    /// Short stable name, e.g. "server", "stdout", "mqtt", "lights:artnet".
    pub name: String,
    pub state: OutputState,
    /// Failed deliveries since start.
    pub errors: u64,
    /// Readings this output dropped because it fell behind.
    pub dropped: u64,
}

/// Whether audio is coming in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Audio arrives.
    #[default]
    Ok,
    /// The input is lost or stalled; the daemon keeps publishing readings
    /// without audio and reopens it by itself.
    NoInput,
    /// The input kept failing; the daemon gives up and exits (its service
    /// manager restarts it).
    Failed,
    /// A state this reader does not know (a newer daemon).
    #[serde(other)]
    Unknown,
}

/// The audio input's state and restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputHealth {
    pub state: SourceState,
    /// Times the capture was restarted after a loss or a stall, since start.
    pub restarts: u64,
    /// Seconds since audio last arrived; 0 while `state` is `ok`.
    pub no_audio_s: u64,
}

/// Counters that tell whether the numbers can be trusted. All are totals since start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub uptime_s: u64,
    /// Audio frames lost because the capture ring was full.
    pub dropped_frames: u64,
    /// Capture device overruns/underruns reported by the audio backend.
    pub xruns: u64,
    /// Times the audio device was lost and reopened.
    pub reconnects: u64,
    /// Readings dropped for slow subscribers, all sinks together.
    pub dropped_readings: u64,
    /// Subscribers connected to the stream server right now.
    pub clients: u32,
    /// The audio input now (absent from daemons before it was reported: read as `ok`).
    #[serde(default)]
    pub input: InputHealth,
    /// Each output's state (absent from daemons before outputs were reported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputHealth>,
}

/// One reading, emitted every hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    /// Increments by one per reading from 0; a gap means readings were dropped.
    pub seq: u64,
    /// Wall-clock time of the end of the window, ms since the Unix epoch.
    pub time_ms: u64,
    /// Position of the end of the window in the input audio, ms since start.
    pub stream_ms: u64,
    pub model_id: String,
    pub state: InputState,
    /// RMS level of the last hop, dBFS.
    pub level_dbfs: f32,
    /// Band meter of the last hop, low to high frequency, each 0..1.
    pub spectrum: Vec<f32>,
    /// Null unless `state` is `music`.
    pub analysis: Option<Analysis>,
    /// Time the model took for this hop.
    pub latency_ms: f32,
    pub health: Health,
}

/// Anything the daemon writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Hello(Hello),
    Reading(Box<Reading>),
    /// Only to a client that asked ([`Request::History`]).
    History(History),
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    v: u32,
    #[serde(flatten)]
    msg: &'a Message,
}

#[derive(Deserialize)]
struct VersionProbe {
    v: Option<u32>,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    #[allow(dead_code)]
    v: u32,
    #[serde(flatten)]
    msg: Message,
}

/// Why a line could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("not a JSON object: {0}")]
    Json(#[source] serde_json::Error),
    #[error("message has no protocol version field \"v\"; is this an earshot readings stream?")]
    MissingVersion,
    #[error(
        "protocol version {got} is not supported (this build reads version {supported}); \
         update the console or the daemon so that both speak the same version"
    )]
    UnsupportedVersion { got: u32, supported: u32 },
    #[error("malformed version {VERSION} message: {0}")]
    Malformed(#[source] serde_json::Error),
}

/// The one line a client sends, first, to a daemon that requires a token
/// (`[server] token_file`): `{"v":1,"type":"auth","token":"..."}`.
/// Daemons without a token never read what clients send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub token: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthWire {
    v: u32,
    #[serde(rename = "type")]
    kind: String,
    token: String,
}

const AUTH_TYPE: &str = "auth";

/// Encodes the auth line, with its `\n`.
pub fn encode_auth(token: &str) -> String {
    let wire = AuthWire {
        v: VERSION,
        kind: AUTH_TYPE.into(),
        token: token.to_string(),
    };
    let mut line =
        serde_json::to_string(&wire).expect("a struct of strings and a number always serialises");
    line.push('\n');
    line
}

/// Decodes an auth line (version checked first, as for every message).
pub fn decode_auth(line: &str) -> Result<Auth, DecodeError> {
    let probe: VersionProbe = serde_json::from_str(line).map_err(DecodeError::Json)?;
    match probe.v {
        None => Err(DecodeError::MissingVersion),
        Some(VERSION) => {
            let wire: AuthWire = serde_json::from_str(line).map_err(DecodeError::Malformed)?;
            if wire.kind != AUTH_TYPE {
                return Err(DecodeError::Malformed(serde::de::Error::custom(format!(
                    "expected type \"auth\", got {:?}",
                    wire.kind
                ))));
            }
            Ok(Auth { token: wire.token })
        }
        Some(got) => Err(DecodeError::UnsupportedVersion {
            got,
            supported: VERSION,
        }),
    }
}

/// Encodes one message as a single JSON line, without the trailing newline.
pub fn encode(msg: &Message) -> String {
    serde_json::to_string(&EnvelopeOut { v: VERSION, msg })
        .expect("protocol types contain only maps, strings and finite-or-null numbers")
}

/// Encodes one message followed by `\n`, ready to write to a stream.
pub fn encode_line(msg: &Message) -> String {
    let mut line = encode(msg);
    line.push('\n');
    line
}

/// Decodes one line (leading/trailing whitespace allowed).
pub fn decode(line: &str) -> Result<Message, DecodeError> {
    let probe: VersionProbe = serde_json::from_str(line).map_err(DecodeError::Json)?;
    match probe.v {
        None => Err(DecodeError::MissingVersion),
        Some(VERSION) => serde_json::from_str::<EnvelopeIn>(line)
            .map(|e| e.msg)
            .map_err(DecodeError::Malformed),
        Some(got) => Err(DecodeError::UnsupportedVersion {
            got,
            supported: VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_reading() -> Reading {
        let mid = MidLevel::from_array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
        let expl = Explanation {
            bias: 0.5,
            effects: MidLevel::from_array([0.01, -0.02, 0.0, 0.03, -0.04, 0.05, 0.0]),
        };
        let emotions = Emotions::from_array([expl.total(); 8]);
        Reading {
            seq: 7,
            time_ms: 1_764_000_000_000,
            stream_ms: 10_000,
            model_id: "edge-test".into(),
            state: InputState::Music,
            level_dbfs: -23.5,
            spectrum: vec![0.0, 0.5, 1.0],
            analysis: Some(Analysis {
                mid_level: mid,
                emotions,
                explanation: Emotions::from_array([expl; 8]),
                raw: Values {
                    mid_level: mid,
                    emotions,
                },
                in_range: true,
                novelty: Some(0.8),
            }),
            latency_ms: 1.25,
            health: Health::default(),
        }
    }

    #[test]
    fn round_trip_reading_and_hello() {
        let r = Message::Reading(Box::new(sample_reading()));
        assert_eq!(decode(&encode(&r)).unwrap(), r);
        let h = Message::Hello(Hello {
            daemon: "0.1.0".into(),
            model_id: "m".into(),
            source: "demo".into(),
            hop_ms: 1000,
            window_ms: 10_000,
            smoothing_ms: 3000,
            mid_level_means: MidLevel::from_array([0.5; 7]),
        });
        assert_eq!(decode(&encode_line(&h)).unwrap(), h);
    }

    #[test]
    fn wire_names_are_stable() {
        let line = encode(&Message::Reading(Box::new(sample_reading())));
        assert!(
            line.starts_with(r#"{"v":1,"type":"reading","seq":7,"#),
            "{line}"
        );
        for name in MidLevel::<f32>::NAMES.iter().chain(&Emotions::<f32>::NAMES) {
            assert!(line.contains(&format!("\"{name}\":")), "{name} missing");
        }
        assert!(line.contains(r#""state":"music""#));
    }

    #[test]
    fn fixture_version_1_still_decodes() {
        // Bytes as written by earshotd 0.1; a change that breaks this breaks deployed consoles.
        let fixture = include_str!("../tests/fixtures/v1.ndjson");
        let msgs: Vec<Message> = fixture.lines().map(|l| decode(l).unwrap()).collect();
        assert!(matches!(msgs[0], Message::Hello(_)));
        let Message::Reading(r) = &msgs[1] else {
            panic!("second line is a reading")
        };
        let a = r.analysis.as_ref().expect("music reading has analysis");
        for (name, e) in a.emotions.iter() {
            let field = Emotions::<f32>::NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap();
            let total = a.explanation.to_array()[field].total();
            assert!((total - e).abs() < 1e-5, "{name}: {total} vs {e}");
        }
        let Message::Reading(r) = &msgs[2] else {
            panic!("third line is a reading")
        };
        assert_eq!(r.state, InputState::Silence);
        assert!(r.analysis.is_none());
    }

    #[test]
    fn input_health_is_on_the_wire_and_optional_when_reading() {
        let mut r = sample_reading();
        r.health.input = InputHealth {
            state: SourceState::NoInput,
            restarts: 2,
            no_audio_s: 41,
        };
        let line = encode(&Message::Reading(Box::new(r.clone())));
        assert!(
            line.contains(r#""input":{"state":"no_input","restarts":2,"no_audio_s":41}"#),
            "{line}"
        );
        assert_eq!(decode(&line).unwrap(), Message::Reading(Box::new(r)));
        // A daemon that does not report its input: read as ok.
        let old = line.replace(
            r#","input":{"state":"no_input","restarts":2,"no_audio_s":41}"#,
            "",
        );
        let Message::Reading(r) = decode(&old).unwrap() else {
            panic!("a reading")
        };
        assert_eq!(r.health.input, InputHealth::default());
        assert_eq!(r.health.input.state, SourceState::Ok);
        // A state from a newer daemon is read as unknown, not as an error.
        let newer = line.replace("no_input", "rebooting");
        let Message::Reading(r) = decode(&newer).unwrap() else {
            panic!("a reading")
        };
        assert_eq!(r.health.input.state, SourceState::Unknown);
    }

    #[test]
    fn unknown_version_is_a_clear_error() {
        let err = decode(r#"{"v":2,"type":"reading","future":true}"#).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::UnsupportedVersion {
                got: 2,
                supported: 1
            }
        ));
        assert!(err.to_string().contains("version 2 is not supported"));
        assert!(matches!(
            decode(r#"{"type":"reading"}"#),
            Err(DecodeError::MissingVersion)
        ));
        assert!(matches!(decode("not json"), Err(DecodeError::Json(_))));
    }

    #[test]
    fn auth_line_round_trips() {
        let line = encode_auth("s3cret \"quoted\"");
        assert_eq!(
            line,
            "{\"v\":1,\"type\":\"auth\",\"token\":\"s3cret \\\"quoted\\\"\"}\n"
        );
        assert_eq!(decode_auth(&line).unwrap().token, "s3cret \"quoted\"");
        assert!(decode_auth("{\"v\":1,\"type\":\"hello\"}").is_err());
        assert!(decode_auth("{\"v\":1,\"type\":\"auth\",\"token\":\"x\",\"y\":1}").is_err());
        assert!(matches!(
            decode_auth("{\"v\":2,\"type\":\"auth\",\"token\":\"x\"}"),
            Err(DecodeError::UnsupportedVersion { got: 2, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_lines_never_panic(s in ".{0,200}") {
            let _ = decode(&s);
        }

        #[test]
        fn readings_survive_the_wire(
            seq in proptest::num::u64::ANY,
            values in proptest::array::uniform8(-10f32..10.0),
            level in -200f32..20.0,
            spectrum in proptest::collection::vec(0f32..1.0, 0..40),
            names in proptest::collection::vec("\\PC{0,12}", 0..4),
            errors in proptest::num::u64::ANY,
        ) {
            let mut r = sample_reading();
            r.seq = seq;
            r.level_dbfs = level;
            r.spectrum = spectrum;
            if let Some(a) = r.analysis.as_mut() {
                a.emotions = Emotions::from_array(values);
            }
            r.health.outputs = names
                .into_iter()
                .map(|name| OutputHealth { name, state: OutputState::Retrying, errors, dropped: 1 })
                .collect();
            let m = Message::Reading(Box::new(r));
            proptest::prop_assert_eq!(decode(&encode(&m)).unwrap(), m);
        }

        #[test]
        fn damaged_readings_never_panic(at in 0usize..2000, len in 0usize..40, junk in "\\PC{0,20}") {
            let mut line = encode(&Message::Reading(Box::new(sample_reading())));
            let mut at = at.min(line.len());
            while !line.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + len).min(line.len());
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.replace_range(at..end, &junk);
            let _ = decode(&line);
        }

        #[test]
        fn dominant_is_the_first_highest(v in proptest::array::uniform8(-1e6f32..1e6)) {
            let e = Emotions::from_array(v);
            let i = Emotions::<f32>::NAMES.iter().position(|n| *n == e.dominant()).unwrap();
            proptest::prop_assert!(v.iter().all(|x| *x <= v[i]));
            proptest::prop_assert!(v[..i].iter().all(|x| *x < v[i]));
        }

        #[test]
        fn named_arrays_keep_order(v in proptest::array::uniform8(-1e6f32..1e6)) {
            let e = Emotions::from_array(v);
            proptest::prop_assert_eq!(e.to_array(), v);
            proptest::prop_assert_eq!(e.iter().map(|(_, x)| x).collect::<Vec<_>>(), v.to_vec());
        }
    }
}
