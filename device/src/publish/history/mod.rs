//! History: per-minute aggregates of the readings (mean, min and max of each
//! emotion and mid-level value, share of time with music) in SQLite, for
//! `earshotd report` and for looking back at a night. Written on the sink's
//! own thread, once a minute; no audio is ever stored.

mod report;
mod store;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use earshot_protocol::{InputState, Reading};
use serde::Deserialize;

pub use report::{buckets, human_ms, query, utc, write_report, Format, HOUR_MS};
pub use store::{value_names, Minute, Store, StoreError, N_VALUES};

use super::{PublishError, Published, Sink, SinkError, SinkSettings};
use crate::config::{Check, ConfigError};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Old minutes are pruned this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// `[history]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// The database file; empty: no history. The Debian package uses
    /// /var/lib/earshot/history.sqlite.
    pub path: PathBuf,
    /// Minutes older than this many days are deleted.
    pub retention_days: u32,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            retention_days: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistorySettings {
    pub path: PathBuf,
    pub retention_days: u32,
}

impl HistoryConfig {
    pub fn validate(&self, check: &Check) -> Result<Option<SinkSettings>, ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Ok(None);
        }
        if !(1..=3650).contains(&self.retention_days) {
            return Err(check.invalid(
                "history",
                "retention_days",
                self.retention_days,
                "must be between 1 and 3650 (the default is 30)",
            ));
        }
        Ok(Some(SinkSettings::History(HistorySettings {
            path: self.path.clone(),
            retention_days: self.retention_days,
        })))
    }
}

/// Running aggregates of the current minute.
#[derive(Debug, Clone)]
struct Accumulator {
    start_ms: i64,
    readings: u32,
    music: u32,
    level_sum: f64,
    sum: [f64; N_VALUES],
    min: [f32; N_VALUES],
    max: [f32; N_VALUES],
}

impl Accumulator {
    fn new(start_ms: i64) -> Self {
        Self {
            start_ms,
            readings: 0,
            music: 0,
            level_sum: 0.0,
            sum: [0.0; N_VALUES],
            min: [f32::INFINITY; N_VALUES],
            max: [f32::NEG_INFINITY; N_VALUES],
        }
    }

    fn add(&mut self, r: &Reading) {
        self.readings += 1;
        self.level_sum += f64::from(r.level_dbfs);
        let Some(a) = r.analysis.as_ref().filter(|_| r.state == InputState::Music) else {
            return;
        };
        self.music += 1;
        let values = a
            .emotions
            .to_array()
            .into_iter()
            .chain(a.mid_level.to_array());
        for (i, v) in values.enumerate() {
            self.sum[i] += f64::from(v);
            self.min[i] = self.min[i].min(v);
            self.max[i] = self.max[i].max(v);
        }
    }

    fn minute(&self) -> Minute {
        let n = f64::from(self.music.max(1));
        Minute {
            start_ms: self.start_ms,
            readings: self.readings,
            music: self.music,
            level_mean_dbfs: (self.level_sum / f64::from(self.readings.max(1))) as f32,
            values: (self.music > 0).then(|| {
                std::array::from_fn(|i| ((self.sum[i] / n) as f32, self.min[i], self.max[i]))
            }),
        }
    }
}

pub struct HistorySink {
    store: Store,
    retention_days: u32,
    current: Option<Accumulator>,
    last_prune: Option<std::time::Instant>,
}

impl HistorySink {
    pub fn start(settings: &HistorySettings) -> Result<Self, PublishError> {
        let store = Store::open(&settings.path).map_err(|e| {
            PublishError::Start(format!(
                "{e}; check that the directory exists and earshotd may write there \
                 ([history] path; the Debian package uses /var/lib/earshot)"
            ))
        })?;
        tracing::info!(
            "history: per-minute aggregates in {} (kept {} days)",
            settings.path.display(),
            settings.retention_days
        );
        Ok(Self {
            store,
            retention_days: settings.retention_days,
            current: None,
            last_prune: None,
        })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let Some(acc) = &self.current else {
            return Ok(());
        };
        if acc.readings == 0 {
            return Ok(());
        }
        let minute = acc.minute();
        self.store
            .write(&minute)
            .map_err(|e| SinkError::Io(std::io::Error::other(e.to_string())))?;
        if self.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            self.last_prune = Some(std::time::Instant::now());
            let keep_from = minute.start_ms - i64::from(self.retention_days) * DAY_MS;
            match self.store.prune(keep_from) {
                Ok(0) => {}
                Ok(n) => tracing::info!("history: {n} minutes past retention deleted"),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Sink for HistorySink {
    fn name(&self) -> &'static str {
        "history"
    }

    fn publish(&mut self, p: &Published) -> Result<(), SinkError> {
        let t = i64::try_from(p.reading.time_ms).unwrap_or_else(|_| now_ms());
        let start = t - t.rem_euclid(MINUTE_MS);
        if self.current.as_ref().is_some_and(|a| a.start_ms != start) {
            // A failed write keeps the minute for the next attempt (fan-out retries).
            self.flush()?;
            self.current = None;
        }
        self.current
            .get_or_insert_with(|| Accumulator::new(start))
            .add(&p.reading);
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}
