//! Reading the history back: minutes grouped into buckets (by the hour for
//! `earshotd report`, as a console asks over the stream), and the report's
//! table, CSV and JSON.

use std::io::Write;
use std::path::Path;

use earshot_protocol::{History, HistoryBucket, Values};

#[cfg(test)]
use super::store::N_VALUES;
use super::store::{Minute, Store};

pub const HOUR_MS: u64 = 3_600_000;

/// Minutes grouped into buckets of `bucket_ms` (aligned to the epoch, so
/// hours are UTC hours), means weighted by each minute's music readings.
/// Buckets without a minute are left out.
pub fn buckets(minutes: &[Minute], bucket_ms: u64) -> Vec<HistoryBucket> {
    let per_minute: Vec<HistoryBucket> = minutes
        .iter()
        .map(|m| HistoryBucket {
            start_ms: u64::try_from(m.start_ms).unwrap_or(0),
            readings: m.readings,
            music_share: m.music as f32 / m.readings.max(1) as f32,
            means: m.values.as_ref().map(|v| Values::from_fn(|i| v[i].0)),
        })
        .collect();
    earshot_protocol::history::merge(&per_minute, bucket_ms)
}

/// The history of the last `span_ms` before `now_ms` in the database at
/// `path`, read-only (the daemon's history sink keeps writing). A database
/// not written yet is an empty history.
pub fn query(path: &Path, span_ms: u64, bucket_ms: u64, now_ms: u64) -> History {
    let bucket_ms = History::bucket_for(span_ms, bucket_ms);
    let mut history = History {
        span_ms,
        bucket_ms,
        buckets: Vec::new(),
        unavailable: None,
    };
    if !path.exists() {
        return history;
    }
    // From the start of the bucket the span begins in, so the first bucket is whole.
    let since = now_ms.saturating_sub(span_ms);
    let since = since - since % bucket_ms;
    let read = Store::open_read_only(path)
        .and_then(|s| s.minutes_since(i64::try_from(since).unwrap_or(i64::MAX)));
    match read {
        Ok(minutes) => history.buckets = buckets(&minutes, bucket_ms),
        Err(e) => {
            tracing::warn!("answering a history request: {e}");
            history.unavailable = Some("the daemon cannot read its history; see its log".into());
        }
    }
    history
}

/// How `earshotd report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The columns the table and CSV show besides music share and the dominant emotion.
const COLUMNS: [&str; 3] = ["valence", "energy", "tension"];

fn dominant(b: &HistoryBucket) -> Option<&'static str> {
    b.means.as_ref().map(|m| m.emotions.dominant())
}

fn mean(b: &HistoryBucket, name: &str) -> Option<f32> {
    let m = b.means.as_ref()?;
    m.emotions
        .iter()
        .chain(m.mid_level.iter())
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Writes the hours of `earshotd report --since SPAN`.
pub fn write_report(
    out: &mut impl Write,
    hours: &[HistoryBucket],
    span_ms: u64,
    format: Format,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = hours
                .iter()
                .map(|h| {
                    let means = h.means.as_ref().map(|m| {
                        m.emotions
                            .iter()
                            .chain(m.mid_level.iter())
                            .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
                            .collect::<serde_json::Map<_, _>>()
                    });
                    serde_json::json!({
                        "hour_utc": utc(h.start_ms),
                        "start_ms": h.start_ms,
                        "readings": h.readings,
                        "music_share": h.music_share,
                        "dominant": dominant(h),
                        "means": means,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)
        }
        Format::Csv => {
            writeln!(
                out,
                "hour_utc,readings,music_share,dominant,{}",
                COLUMNS.join(",")
            )?;
            for h in hours {
                let dom = dominant(h).unwrap_or("");
                write!(
                    out,
                    "{},{},{:.3},{dom}",
                    utc(h.start_ms),
                    h.readings,
                    h.music_share
                )?;
                for c in COLUMNS {
                    match mean(h, c) {
                        Some(v) => write!(out, ",{v:.4}")?,
                        None => write!(out, ",")?,
                    }
                }
                writeln!(out)?;
            }
            Ok(())
        }
        Format::Table => {
            if hours.is_empty() {
                return writeln!(out, "no history in the last {}", human_ms(span_ms));
            }
            writeln!(
                out,
                "hour (UTC)        music  dominant  valence  energy  tension  readings"
            )?;
            for h in hours {
                let v = |c: &str| mean(h, c).map_or_else(|| "-".into(), |v| format!("{v:.2}"));
                writeln!(
                    out,
                    "{:<17} {:>4.0}%  {:<8}  {:>7}  {:>6}  {:>7}  {:>8}",
                    utc(h.start_ms),
                    h.music_share * 100.0,
                    dominant(h).unwrap_or("-"),
                    v("valence"),
                    v("energy"),
                    v("tension"),
                    h.readings
                )?;
            }
            Ok(())
        }
    }
}

/// "90 min", "6 h", "7 days".
pub fn human_ms(ms: u64) -> String {
    let h = ms as f64 / HOUR_MS as f64;
    if h >= 48.0 {
        format!("{:.0} days", h / 24.0)
    } else if h >= 1.0 {
        format!("{h:.0} h")
    } else {
        format!("{:.0} min", ms as f64 / 60_000.0)
    }
}

/// "YYYY-MM-DD HH:MM" (UTC) of a time in ms since the epoch.
pub fn utc(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (H. Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(start_ms: u64, readings: u32, music: u32, valence: f32) -> Minute {
        let mut v = [(0.1f32, 0.0f32, 0.2f32); N_VALUES];
        v[0] = (valence, valence, valence);
        Minute {
            start_ms: start_ms as i64,
            readings,
            music,
            level_mean_dbfs: -30.0,
            values: (music > 0).then_some(v),
        }
    }

    #[test]
    fn hours_weight_minutes_by_their_music() {
        let h0 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;
        let hs = buckets(
            &[
                minute(h0, 60, 60, 0.8),
                minute(h0 + 60_000, 60, 20, 0.4),
                minute(h0 + 120_000, 60, 0, 0.0),
                minute(h0 + HOUR_MS, 60, 30, 0.3),
            ],
            HOUR_MS,
        );
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].readings, 180);
        assert!((hs[0].music_share - 80.0 / 180.0).abs() < 1e-6);
        assert!((mean(&hs[0], "valence").unwrap() - 0.7).abs() < 1e-6);
        assert!((mean(&hs[0], "minorness").unwrap() - 0.1).abs() < 1e-6);
        assert_eq!(dominant(&hs[0]), Some("valence"));
        assert_eq!(hs[1].start_ms, h0 + HOUR_MS);
        assert!((mean(&hs[1], "valence").unwrap() - 0.3).abs() < 1e-6);
        let silent = buckets(&[minute(h0, 60, 0, 0.0)], HOUR_MS);
        assert_eq!(
            (dominant(&silent[0]), silent[0].means.is_none()),
            (None, true)
        );
        let quarters = buckets(
            &[minute(h0, 60, 60, 0.8), minute(h0 + 900_000, 60, 60, 0.2)],
            900_000,
        );
        assert_eq!(quarters.len(), 2);
    }

    #[test]
    fn the_report_prints_one_row_per_hour() {
        let h0 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;
        let hs = buckets(
            &[minute(h0, 60, 30, 0.8), minute(h0 + HOUR_MS, 60, 0, 0.0)],
            HOUR_MS,
        );
        let text = |format| {
            let mut out = Vec::new();
            write_report(&mut out, &hs, 6 * HOUR_MS, format).unwrap();
            String::from_utf8(out).unwrap()
        };
        let table = text(Format::Table);
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(
            table
                .lines()
                .nth(1)
                .unwrap()
                .contains(" 50%  valence      0.80"),
            "{table}"
        );
        let csv = text(Format::Csv);
        assert_eq!(
            csv.lines().nth(2).unwrap(),
            format!("{},60,0.000,,,,", utc(h0 + HOUR_MS))
        );
        let json: serde_json::Value = serde_json::from_str(&text(Format::Json)).unwrap();
        assert_eq!(json[0]["means"]["valence"].as_f64().unwrap() as f32, 0.8);
        assert!(json[1]["dominant"].is_null());
        let mut out = Vec::new();
        write_report(&mut out, &[], 6 * HOUR_MS, Format::Table).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "no history in the last 6 h\n"
        );
    }

    #[test]
    fn utc_dates_and_durations() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_795_623_644_777), "2026-11-25 16:20");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(human_ms(90 * 60_000), "2 h");
        assert_eq!(human_ms(30 * 60_000), "30 min");
        assert_eq!(human_ms(7 * 24 * HOUR_MS), "7 days");
    }
}
