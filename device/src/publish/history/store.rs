//! The history database: one row per minute of readings, never audio.
//!
//! SQLite in WAL mode with `synchronous = NORMAL`: a power cut may lose the
//! last minute written, never the file.

use std::path::Path;

use earshot_protocol::{Emotions, MidLevel};
use rusqlite::{params, Connection, OptionalExtension};

/// Why the history cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("history {path}: {source}")]
pub struct StoreError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

/// The values kept per minute: 8 emotions, then 7 mid-level features.
pub fn value_names() -> impl Iterator<Item = &'static str> {
    Emotions::<f32>::NAMES
        .iter()
        .chain(MidLevel::<f32>::NAMES.iter())
        .copied()
}

pub const N_VALUES: usize = 15;

/// One minute of readings.
#[derive(Debug, Clone, PartialEq)]
pub struct Minute {
    /// Start of the minute, ms since the Unix epoch.
    pub start_ms: i64,
    pub readings: u32,
    /// Readings with music.
    pub music: u32,
    pub level_mean_dbfs: f32,
    /// Mean, min and max of each value over the music readings (none without music).
    pub values: Option<[(f32, f32, f32); N_VALUES]>,
}

pub struct Store {
    conn: Connection,
    path: String,
}

fn columns() -> String {
    value_names()
        .map(|n| format!("{n}_mean REAL, {n}_min REAL, {n}_max REAL"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        let err = |source| StoreError {
            path: name.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS minutes (
                start_ms INTEGER PRIMARY KEY,
                readings INTEGER NOT NULL,
                music INTEGER NOT NULL,
                level_mean_dbfs REAL NOT NULL,
                {}
            );",
            columns()
        ))
        .map_err(err)?;
        Ok(Self { conn, path: name })
    }

    /// Opens an existing database for reading only (reports, and answers to
    /// consoles while the daemon's history sink writes: WAL lets both run).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        let err = |source| StoreError {
            path: name.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(err)?;
        Ok(Self { conn, path: name })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes one minute (replacing a row for the same minute: a restart
    /// within a minute keeps the later part).
    pub fn write(&mut self, m: &Minute) -> Result<(), StoreError> {
        let names: Vec<String> = value_names()
            .flat_map(|n| [format!("{n}_mean"), format!("{n}_min"), format!("{n}_max")])
            .collect();
        let sql = format!(
            "INSERT OR REPLACE INTO minutes (start_ms, readings, music, level_mean_dbfs, {}) \
             VALUES (?1, ?2, ?3, ?4, {})",
            names.join(", "),
            (5..5 + names.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut values: Vec<Option<f64>> = Vec::with_capacity(names.len());
        for i in 0..N_VALUES {
            match &m.values {
                Some(v) => values.extend([v[i].0, v[i].1, v[i].2].map(|x| Some(f64::from(x)))),
                None => values.extend([None, None, None]),
            }
        }
        let mut args: Vec<&dyn rusqlite::ToSql> =
            vec![&m.start_ms, &m.readings, &m.music, &m.level_mean_dbfs];
        for v in &values {
            args.push(v);
        }
        self.conn
            .execute(&sql, args.as_slice())
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Deletes minutes older than `before_ms`; returns how many.
    pub fn prune(&mut self, before_ms: i64) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM minutes WHERE start_ms < ?1",
                params![before_ms],
            )
            .map_err(|e| self.err(e))
    }

    /// Minutes from `since_ms` on, oldest first.
    pub fn minutes_since(&self, since_ms: i64) -> Result<Vec<Minute>, StoreError> {
        let sql = format!(
            "SELECT start_ms, readings, music, level_mean_dbfs, {} FROM minutes \
             WHERE start_ms >= ?1 ORDER BY start_ms",
            value_names()
                .map(|n| format!("{n}_mean, {n}_min, {n}_max"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![since_ms], |row| {
                let mut values = [(0f32, 0f32, 0f32); N_VALUES];
                let mut any = false;
                for (i, v) in values.iter_mut().enumerate() {
                    let mean: Option<f64> = row.get(4 + 3 * i)?;
                    let min: Option<f64> = row.get(5 + 3 * i)?;
                    let max: Option<f64> = row.get(6 + 3 * i)?;
                    if let (Some(a), Some(b), Some(c)) = (mean, min, max) {
                        *v = (a as f32, b as f32, c as f32);
                        any = true;
                    }
                }
                Ok(Minute {
                    start_ms: row.get(0)?,
                    readings: row.get(1)?,
                    music: row.get(2)?,
                    level_mean_dbfs: row.get::<_, f64>(3)? as f32,
                    values: any.then_some(values),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The newest minute's start, if any.
    pub fn last_minute(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT MAX(start_ms) FROM minutes", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }
}
