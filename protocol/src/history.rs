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

use crate::{DecodeError, Emotions, MidLevel, Values, VersionProbe, VERSION};

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

/// Buckets merged into ones of `bucket_ms` (aligned to the epoch, so that
/// hours are UTC hours), oldest first: readings add up, and means are
/// weighted by each bucket's readings with music. `buckets` must be oldest
/// first, as the daemon sends them.
pub fn merge(buckets: &[HistoryBucket], bucket_ms: u64) -> Vec<HistoryBucket> {
    const N: usize = Emotions::<f32>::LEN + MidLevel::<f32>::LEN;
    let bucket_ms = bucket_ms.max(1);
    // (bucket, readings with music, weighted sums of emotions then mid-level)
    let mut out: Vec<(HistoryBucket, f64, [f64; N])> = Vec::new();
    for b in buckets {
        let start = b.start_ms - b.start_ms % bucket_ms;
        if out.last().is_none_or(|(m, _, _)| m.start_ms != start) {
            let empty = HistoryBucket {
                start_ms: start,
                readings: 0,
                music_share: 0.0,
                means: None,
            };
            out.push((empty, 0.0, [0.0; N]));
        }
        let Some((m, music, sums)) = out.last_mut() else {
            continue;
        };
        m.readings = m.readings.saturating_add(b.readings);
        let share = if b.music_share.is_finite() {
            b.music_share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let w = f64::from(b.readings) * f64::from(share);
        if let (Some(v), true) = (&b.means, w > 0.0) {
            let values = v
                .emotions
                .to_array()
                .into_iter()
                .chain(v.mid_level.to_array());
            for (s, x) in sums.iter_mut().zip(values) {
                *s += w * f64::from(x);
            }
            *music += w;
        }
    }
    out.into_iter()
        .map(|(mut m, music, sums)| {
            m.music_share = (music / f64::from(m.readings.max(1))) as f32;
            if music > 0.0 {
                m.means = Some(Values::from_fn(|i| (sums[i] / music) as f32));
            }
            m
        })
        .collect()
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
    fn merging_weights_means_by_music() {
        let bucket = |start_ms: u64, readings: u32, music_share: f32, valence: f32| HistoryBucket {
            start_ms,
            readings,
            music_share,
            means: (music_share > 0.0).then(|| Values {
                emotions: Emotions::from_array([valence, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]),
                mid_level: MidLevel::from_array([0.5; 7]),
            }),
        };
        let h0 = 1_800_000_000_000u64; // a whole hour
        let q = 900_000;
        let hours = merge(
            &[
                bucket(h0, 900, 1.0, 0.9),
                bucket(h0 + q, 900, 0.5, 0.3),
                bucket(h0 + 2 * q, 900, 0.0, 0.0),
                bucket(h0 + 3_600_000, 900, 1.0, 0.4),
                // a hostile share counts as no music, not as a weight
                bucket(h0 + 3_600_000 + q, 900, -3.0, 99.0),
            ],
            3_600_000,
        );
        assert_eq!(hours.len(), 2);
        assert_eq!(hours[0].readings, 2700);
        assert!((hours[0].music_share - 0.5).abs() < 1e-6);
        let m = hours[0].means.as_ref().unwrap();
        assert!((m.emotions.valence - 0.7).abs() < 1e-6);
        assert!((m.mid_level.minorness - 0.5).abs() < 1e-6);
        assert_eq!(hours[1].readings, 1800);
        assert!((hours[1].means.as_ref().unwrap().emotions.valence - 0.4).abs() < 1e-6);
        let quiet = merge(&[bucket(h0, 60, 0.0, 0.0)], 3_600_000);
        assert!(quiet[0].means.is_none());
        assert_eq!(quiet[0].music_share, 0.0);
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
