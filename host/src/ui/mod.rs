//! Draws the console from `&App`: header with view tabs, the Overview, Explain,
//! Health and History views, a status bar and the help overlay. Drawing never changes
//! state; everything fits 80x24 and degrades without colours.

use std::time::Duration;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use earshot_protocol::{Emotions, InputState, MidLevel, OutputState};

use crate::app::{App, Connection, History, Trend, View};
use crate::explain::{self, Degree};
use crate::theme::Theme;

const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const PARTIAL: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const SHADE: [char; 5] = [' ', '░', '▒', '▓', '█'];
/// Sparklines cover at least this many readings (2 minutes at a 1 s hop).
const SPARK_SPAN: usize = 120;
/// Level meter range.
const LEVEL_FLOOR_DBFS: f32 = -60.0;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let [header, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, app, theme);
    match (&app.connection, &app.last) {
        (Connection::VersionMismatch(msg), _) => draw_version_mismatch(frame, body, msg, theme),
        (_, None) => draw_waiting(frame, body, app, theme),
        (_, Some(_)) => match app.view {
            View::Overview => draw_overview(frame, body, app, theme),
            View::Explain => draw_explain(frame, body, app, theme),
            View::Health => draw_health(frame, body, app, theme),
            View::History => draw_history(frame, body, app, theme),
        },
    }
    draw_status(frame, status, app, theme);
    if app.show_help {
        draw_help(frame, body, theme);
    }
}

// ---------------------------------------------------------------- text pieces

/// A bar of `width` cells filled to `v` (0..1), in eighths: (filled, track).
pub fn bar(v: f32, width: usize) -> (String, String) {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (v * width as f32 * 8.0).round() as usize;
    let mut filled = "█".repeat((eighths / 8).min(width));
    if eighths / 8 < width && !eighths.is_multiple_of(8) {
        filled.push(PARTIAL[eighths % 8]);
    }
    let used = filled.chars().count();
    (filled, "░".repeat(width.saturating_sub(used)))
}

/// Readings per sparkline cell so that `width` cells span about 2 minutes.
fn per_cell(width: usize) -> usize {
    if width == 0 {
        1
    } else {
        SPARK_SPAN.div_ceil(width).max(1)
    }
}

/// Newest on the right; `·` where readings had no value, blank before history began.
pub fn sparkline(history: &History, width: usize, per_cell: usize) -> String {
    let values: Vec<Option<f32>> = history.iter().collect();
    let mut cells = Vec::with_capacity(width);
    for cell in 0..width {
        let end = values.len().saturating_sub(cell * per_cell);
        let start = end.saturating_sub(per_cell);
        let chunk = &values[start..end];
        let known: Vec<f32> = chunk
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        cells.push(if chunk.is_empty() {
            ' '
        } else if known.is_empty() {
            '·'
        } else {
            let mean = known.iter().sum::<f32>() / known.len() as f32;
            SPARK[((mean.clamp(0.0, 1.0) * 7.0).round() as usize).min(7)]
        });
    }
    cells.iter().rev().collect()
}

fn trend_symbol(t: Trend) -> &'static str {
    match t {
        Trend::Rising => "↑",
        Trend::Falling => "↓",
        Trend::Steady => "→",
        Trend::Unknown => " ",
    }
}

/// `45 s`, `12 min`, `3 h 05 min`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// `1:02:03`.
pub fn clock(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, (secs % 3600) / 60, secs % 60)
}

fn pad(s: &str, width: usize) -> String {
    let mut out: String = s.chars().take(width).collect();
    let n = out.chars().count();
    out.push_str(&" ".repeat(width - n));
    out
}

fn block<'a>(title: impl Into<String>, stale: bool, theme: &Theme) -> Block<'a> {
    // "stale" leads the title so that a narrow block cannot cut it off.
    let mut spans = vec![Span::raw(" ")];
    if stale {
        spans.push(Span::styled(
            "stale",
            theme.warn().add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(" · "));
    }
    spans.push(Span::styled(
        format!("{} ", title.into()),
        theme.block_title(),
    ));
    Block::bordered()
        .title(Line::from(spans))
        .border_style(if stale { theme.stale() } else { theme.track() })
}

/// `+0.12`, `-0.05`, and ` 0.00` for what rounds to zero.
fn signed(e: f32) -> String {
    if e.abs() < 0.005 {
        " 0.00".into()
    } else {
        format!("{e:+.2}")
    }
}

fn state_word(state: InputState) -> &'static str {
    match state {
        InputState::Music => "music",
        InputState::Silence => "silence",
        InputState::Warmup => "warmup",
    }
}

fn state_symbol(state: InputState) -> &'static str {
    match state {
        InputState::Music => "♪",
        InputState::Silence => "-",
        InputState::Warmup => "…",
    }
}

/// `label  value` with the label in its own style.
fn kv<'a>(label: &str, value: impl Into<String>, style: Style, theme: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(pad(label, 12), theme.label()),
        Span::styled(value.into(), style),
    ])
}

mod explain_view;
mod frame;
mod health;
mod history_view;
mod overview;
#[cfg(test)]
mod tests;

use explain_view::*;
use frame::*;
use health::*;
use history_view::*;
use overview::*;
