//! Looking back: a client asks the daemon for its history with one
//! [`Request`] line, and the daemon answers on the same stream with a
//! `history` message ([`History`]) between readings.
//!
//! ```text
//! client: {"v":1,"type":"history","span_ms":43200000,"bucket_ms":900000}
//! daemon: {"v":1,"type":"history","span_ms":43200000,"bucket_ms":900000,"buckets":[...],"unavailable":null}
//! ```
//!
//! Requests are optional: a client that never sends one gets the hello and
//! the readings, as before. Daemons that keep no history answer with
//! `unavailable` set and no buckets.

use serde::{Deserialize, Serialize};

use crate::{DecodeError, Values, VersionProbe, VERSION};

/// The daemon keeps one row per minute; a bucket is whole minutes.
pub const MINUTE_MS: u64 = 60_000;
/// The most buckets one answer holds (a day in minutes). Readers reject more.
pub const MAX_HISTORY_BUCKETS: usize = 1440;
/// A request line is short; a longer line is not a request.
pub const MAX_REQUEST_LINE: usize = 4096;

/// What a client may send (after the auth line, when the daemon wants one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The last `span_ms` of history in buckets of `bucket_ms` (whole
    /// minutes). The daemon widens buckets so that at most
    /// [`MAX_HISTORY_BUCKETS`] come back.
    History { span_ms: u64, bucket_ms: u64 },
}

#[derive(Serialize)]
struct RequestOut<'a> {
    v: u32,
    #[serde(flatten)]
    request: &'a Request,
}

#[derive(Deserialize)]
struct RequestIn {
    #[allow(dead_code)]
    v: u32,
    #[serde(flatten)]
    request: Request,
}

/// Encodes a request line, with its `\n`.
pub fn encode_request(request: &Request) -> String {
    let mut line = serde_json::to_string(&RequestOut {
        v: VERSION,
        request,
    })
    .expect("a request is a tag and integers");
    line.push('\n');
    line
}

/// Decodes a request line (version checked first, as for every message).
pub fn decode_request(line: &str) -> Result<Request, DecodeError> {
    let probe: VersionProbe = serde_json::from_str(line).map_err(DecodeError::Json)?;
    match probe.v {
        None => Err(DecodeError::MissingVersion),
        Some(VERSION) => serde_json::from_str::<RequestIn>(line)
            .map(|r| r.request)
            .map_err(DecodeError::Malformed),
        Some(got) => Err(DecodeError::UnsupportedVersion {
            got,
            supported: VERSION,
        }),
    }
}

/// One bucket of history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryBucket {
    /// Start of the bucket, ms since the Unix epoch (aligned to `bucket_ms`).
    pub start_ms: u64,
    /// Readings the daemon made in the bucket.
    pub readings: u32,
    /// Share of those readings with music, 0..1.
    pub music_share: f32,
    /// Mean of each value over the readings with music; null without music.
    pub means: Option<Values>,
}

/// The daemon's answer to [`Request::History`]: buckets with any reading,
/// oldest first, up to the last whole minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub span_ms: u64,
    /// The bucket length actually used (the request's, or wider).
    pub bucket_ms: u64,
    pub buckets: Vec<HistoryBucket>,
    /// Why there are no buckets (e.g. the daemon keeps no history); null otherwise.
    pub unavailable: Option<String>,
}

impl History {
    /// Bucket length for a request: whole minutes, at least one, and wide
    /// enough that `span_ms` fits in [`MAX_HISTORY_BUCKETS`].
    pub fn bucket_for(span_ms: u64, bucket_ms: u64) -> u64 {
        let fit = span_ms.div_ceil(MAX_HISTORY_BUCKETS as u64);
        bucket_ms.max(fit).max(MINUTE_MS).div_ceil(MINUTE_MS) * MINUTE_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode_line, Emotions, Message, MidLevel};

    #[test]
    fn requests_round_trip_and_are_checked() {
        let r = Request::History {
            span_ms: 43_200_000,
            bucket_ms: 900_000,
        };
        let line = encode_request(&r);
        assert_eq!(
            line,
            "{\"v\":1,\"type\":\"history\",\"span_ms\":43200000,\"bucket_ms\":900000}\n"
        );
        assert_eq!(decode_request(&line).unwrap(), r);
        assert!(matches!(
            decode_request("{\"v\":2,\"type\":\"history\"}"),
            Err(DecodeError::UnsupportedVersion { got: 2, .. })
        ));
        for bad in [
            "{\"type\":\"history\",\"span_ms\":1,\"bucket_ms\":1}",
            "{\"v\":1,\"type\":\"delete_everything\"}",
            "{\"v\":1,\"type\":\"history\",\"span_ms\":-1,\"bucket_ms\":1}",
            "{\"v\":1,\"type\":\"history\",\"span_ms\":1,\"bucket_ms\":1,\"x\":0}",
            "not json",
        ] {
            assert!(decode_request(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn history_travels_as_a_message() {
        let h = History {
            span_ms: 3_600_000,
            bucket_ms: 900_000,
            buckets: vec![
                HistoryBucket {
                    start_ms: 1_800_000_000_000,
                    readings: 900,
                    music_share: 0.5,
                    means: Some(Values {
                        mid_level: MidLevel::from_array([0.5; 7]),
                        emotions: Emotions::from_array([0.25; 8]),
                    }),
                },
                HistoryBucket {
                    start_ms: 1_800_000_900_000,
                    readings: 60,
                    music_share: 0.0,
                    means: None,
                },
            ],
            unavailable: None,
        };
        let line = encode_line(&Message::History(h.clone()));
        assert!(line.starts_with("{\"v\":1,\"type\":\"history\",\"span_ms\":3600000,"));
        assert_eq!(decode(&line).unwrap(), Message::History(h));
    }

    #[test]
    fn buckets_are_whole_minutes_and_bounded_in_number() {
        assert_eq!(History::bucket_for(3_600_000, 900_000), 900_000);
        assert_eq!(History::bucket_for(3_600_000, 1), MINUTE_MS);
        assert_eq!(History::bucket_for(3_600_000, 90_000), 120_000);
        // 30 days in 1-minute buckets would be 43200: widened to 30 minutes.
        let month = 30 * 86_400_000;
        assert_eq!(History::bucket_for(month, MINUTE_MS), 1_800_000);
        assert!(month / History::bucket_for(month, MINUTE_MS) <= MAX_HISTORY_BUCKETS as u64);
        assert_eq!(History::bucket_for(u64::MAX, 0) % MINUTE_MS, 0);
    }
}
