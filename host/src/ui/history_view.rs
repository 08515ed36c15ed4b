//! View 4: the daemon's history (its `[history]` database), asked for over
//! the stream: sparklines over the last 12 hours, then the recent hours.

use earshot_protocol::{HistoryBucket, Values};

use super::*;
use crate::app::{LOOKBACK_BUCKET, LOOKBACK_SPAN};

/// Rows drawn as sparklines, one cell per bucket.
const SERIES: [&str; 4] = ["valence", "energy", "tension", "music"];
const LABEL: usize = 9;
const HOUR_MS: u64 = 3_600_000;

pub(super) fn draw_history(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let lb = &app.lookback;
    let title = format!(
        "History · last {} h in {} min steps (UTC)",
        LOOKBACK_SPAN.as_secs() / 3600,
        LOOKBACK_BUCKET.as_secs() / 60
    );
    let Some((at, history)) = &lb.answer else {
        let msg = if lb.requests.is_none() {
            "History comes from a running daemon; a replay has none."
        } else if lb.pending() {
            "Asking the daemon for its history…"
        } else {
            "No history yet: it is asked for when the daemon is connected."
        };
        frame.render_widget(
            Paragraph::new(Line::styled(msg, theme.label())).block(block(title, false, theme)),
            area,
        );
        return;
    };
    let age = human(app.now.saturating_duration_since(*at));
    let mut note = format!("updated {age} ago");
    if lb.pending() {
        note.push_str(", asking again…");
    }
    if let Some(why) = &history.unavailable {
        let lines = vec![
            Line::styled(why.clone(), theme.warn()),
            Line::from(""),
            Line::styled(
                "Set [history] path in the daemon's config (docs/install.md) to keep one.",
                theme.label(),
            ),
        ];
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(block(title, false, theme)),
            area,
        );
        return;
    }
    let [chart, table] = Layout::vertical([
        Constraint::Length(SERIES.len() as u16 + 4),
        Constraint::Min(0),
    ])
    .areas(area);
    let inner = chart.width.saturating_sub(2) as usize;
    // one cell per bucket of the span; a narrow terminal shows the newest
    let span_cells = history.span_ms.div_ceil(history.bucket_ms.max(1));
    let cells = inner
        .saturating_sub(LABEL + 1)
        .min(usize::try_from(span_cells).unwrap_or(usize::MAX));
    let end_ms = history
        .buckets
        .last()
        .map(|b| b.start_ms + history.bucket_ms)
        .unwrap_or(0);
    let mut lines: Vec<Line> = Vec::new();
    for name in SERIES {
        let row = spark_row(&history.buckets, history.bucket_ms, end_ms, cells, name);
        let style = match Emotions::<f32>::NAMES.iter().position(|n| *n == name) {
            Some(i) => theme.emotion(i),
            None => theme.feature(),
        };
        lines.push(Line::from(vec![
            Span::styled(pad(name, LABEL), theme.label()),
            Span::raw(" "),
            Span::styled(row, style),
        ]));
    }
    lines.push(Line::from(vec![
        Span::raw(" ".repeat(LABEL + 1)),
        Span::styled(axis(history.bucket_ms, end_ms, cells), theme.label()),
    ]));
    lines.push(Line::styled(
        format!("{} buckets with readings · {note}", history.buckets.len()),
        theme.label(),
    ));
    frame.render_widget(
        Paragraph::new(lines).block(block(title, false, theme)),
        chart,
    );

    let hours = earshot_protocol::history::merge(&history.buckets, HOUR_MS);
    let mut rows = vec![Line::styled(
        "hour   music  dominant  valence  energy  tension",
        theme.label(),
    )];
    let room = table.height.saturating_sub(3) as usize;
    if hours.is_empty() {
        rows.push(Line::styled(
            "nothing in the last 12 h: the daemon was not running or heard nothing",
            theme.label(),
        ));
    }
    for h in hours.iter().rev().take(room) {
        let v = |f: fn(&Values) -> f32| {
            h.means
                .as_ref()
                .map_or_else(|| "-".to_string(), |m| format!("{:.2}", clamp01(f(m))))
        };
        rows.push(Line::from(format!(
            "{}  {:>4.0}%  {:<8}  {:>7}  {:>6}  {:>7}",
            hh_mm(h.start_ms),
            clamp01(h.music_share) * 100.0,
            h.means.as_ref().map_or("-", |m| m.emotions.dominant()),
            v(|m| m.emotions.valence),
            v(|m| m.emotions.energy),
            v(|m| m.emotions.tension),
        )));
    }
    frame.render_widget(
        Paragraph::new(rows).block(block("By the hour (UTC), newest first", false, theme)),
        table,
    );
}

fn clamp01(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The value a series shows for one bucket (None: no music in it).
fn series(b: &HistoryBucket, name: &str) -> Option<f32> {
    if name == "music" {
        return Some(b.music_share);
    }
    let m = b.means.as_ref()?;
    m.emotions.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// One cell per bucket, newest on the right at `end_ms`: blank where the
/// daemon made no readings, `·` where it heard no music.
fn spark_row(
    buckets: &[HistoryBucket],
    bucket_ms: u64,
    end_ms: u64,
    cells: usize,
    name: &str,
) -> String {
    let mut row = vec![' '; cells];
    let bucket_ms = bucket_ms.max(1);
    for b in buckets {
        let back = end_ms.saturating_sub(b.start_ms) / bucket_ms;
        let Some(cell) = usize::try_from(back)
            .ok()
            .filter(|back| (1..=cells).contains(back))
            .map(|back| cells - back)
        else {
            continue;
        };
        row[cell] = match series(b, name) {
            Some(v) => SPARK[((clamp01(v) * 7.0).round() as usize).min(7)],
            None => '·',
        };
    }
    row.into_iter().collect()
}

/// Hour marks under the sparklines, e.g. `|20:00      |21:00`.
fn axis(bucket_ms: u64, end_ms: u64, cells: usize) -> String {
    let mut row = vec![' '; cells];
    let bucket_ms = bucket_ms.max(1);
    for cell in 0..cells {
        let start = end_ms.saturating_sub((cells - cell) as u64 * bucket_ms);
        // a label every 2 hours, where it fits
        if start.is_multiple_of(2 * HOUR_MS) && cell + 6 <= cells {
            for (i, ch) in format!("|{}", hh_mm(start)).chars().enumerate() {
                row[cell + i] = ch;
            }
        }
    }
    row.into_iter().collect()
}

/// "HH:MM" (UTC) of a time in ms since the epoch.
fn hh_mm(ms: u64) -> String {
    let minutes = (ms / 60_000) % 1440;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start_ms: u64, readings: u32, music_share: f32, valence: f32) -> HistoryBucket {
        HistoryBucket {
            start_ms,
            readings,
            music_share,
            means: (music_share > 0.0).then(|| Values {
                emotions: Emotions::from_array([valence, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]),
                mid_level: MidLevel::from_array([0.5; 7]),
            }),
        }
    }

    #[test]
    fn sparkline_cells_sit_at_their_time() {
        let q = HOUR_MS / 4;
        let end = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;
        let row = spark_row(
            &[
                bucket(end - 3 * q, 900, 1.0, 1.0),
                bucket(end - q, 900, 0.0, 0.0),
            ],
            q,
            end,
            5,
            "valence",
        );
        assert_eq!(row, "  █ ·");
        // buckets outside the row and hostile values are dropped or clamped
        let row = spark_row(
            &[bucket(end - 9 * q, 1, 1.0, f32::INFINITY)],
            q,
            end,
            5,
            "valence",
        );
        assert_eq!(row, "     ");
        assert_eq!(hh_mm(end + 90 * 60_000), "09:30");
    }
}
