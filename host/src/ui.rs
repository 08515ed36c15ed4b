//! Draws the console from `&App`: header with view tabs, the Overview, Explain
//! and Health views, a status bar and the help overlay. Drawing never changes
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

// ---------------------------------------------------------------- frame

fn draw_header(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut spans = vec![Span::styled(" earshot ", theme.title())];
    for (i, view) in View::ALL.iter().enumerate() {
        let text = format!(" {} {} ", i + 1, view.title());
        let style = if *view == app.view {
            theme.selected().add_modifier(Modifier::BOLD)
        } else {
            theme.label()
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(text, style));
    }
    let used: usize = spans.iter().map(|s| s.width()).sum();
    if let Some(model) = app.model_id() {
        let right = format!("model {model} ");
        let room = (area.width as usize).saturating_sub(used);
        if room > right.chars().count() {
            spans.push(Span::raw(" ".repeat(room - right.chars().count())));
            spans.push(Span::styled(right, theme.label()));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Connection state in a few words, with its style.
fn connection_text(app: &App, theme: &Theme) -> (String, Style) {
    match &app.connection {
        Connection::Live if app.is_stale() => (
            format!(
                "◌ stale: no reading for {}",
                human(app.age().unwrap_or_default())
            ),
            theme.warn(),
        ),
        Connection::Live if app.last.is_none() => ("● connected, waiting".into(), theme.good()),
        Connection::Live => ("● live".into(), theme.good()),
        Connection::Connecting { attempt } => {
            (format!("… connecting (attempt {attempt})"), theme.warn())
        }
        Connection::Lost { since, .. } => (
            format!(
                "✕ disconnected {}, retrying (#{})",
                human(app.now.saturating_duration_since(*since)),
                app.attempt
            ),
            theme.bad(),
        ),
        Connection::VersionMismatch(_) => ("✕ protocol version mismatch".into(), theme.bad()),
        Connection::Ended => ("■ replay finished".into(), theme.warn()),
    }
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let (text, style) = connection_text(app, theme);
    let width = area.width as usize;
    let mut left = format!(" {text}");
    if app.bad_lines > 0 {
        left.push_str(&format!(" · ⚠ {} skipped (3)", app.bad_lines));
    }
    let source = format!("  {}", app.source);
    let keys_long = "1-3 view  ↑↓ emotion  ? help  q quit ";
    let keys_short = "? help  q quit ";
    let n = |s: &str| s.chars().count();
    let (source, keys) = if n(&left) + n(&source) + n(keys_long) < width {
        (source, keys_long)
    } else if n(&left) + n(keys_long) < width {
        (String::new(), keys_long)
    } else {
        (String::new(), keys_short)
    };
    let gap = width.saturating_sub(n(&left) + n(&source) + n(keys));
    let line = Line::from(vec![
        Span::styled(left, style),
        Span::styled(source, theme.label()),
        Span::raw(" ".repeat(gap)),
        Span::styled(keys, theme.label()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_message(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>, theme: &Theme) {
    let rect = centered(area, 72, lines.len() as u16 + 4);
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block(title, false, theme).padding(ratatui::widgets::Padding::horizontal(1)));
    frame.render_widget(Clear, rect);
    frame.render_widget(p, rect);
}

fn draw_waiting(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let (title, lines) = match &app.connection {
        Connection::Live => (
            "Connected",
            vec![
                Line::from(format!("Connected to earshotd at {}.", app.source)),
                Line::from("Waiting for the first reading (one per hop, about a second)."),
            ],
        ),
        Connection::Ended => (
            "Empty recording",
            vec![Line::from(format!("{} has no readings.", app.source))],
        ),
        Connection::Lost { reason, .. } => (
            "No daemon",
            vec![
                Line::styled(format!("No earshotd at {}.", app.source), theme.bad()),
                Line::from(reason.clone()),
                Line::from(format!("Retrying with backoff (attempt {}).", app.attempt)),
                Line::from(""),
                Line::styled("Is it running?  systemctl status earshotd", theme.label()),
                Line::styled(
                    "Or play a recording:  earshot --replay FILE.ndjson",
                    theme.label(),
                ),
            ],
        ),
        _ => (
            "Connecting",
            vec![Line::from(format!(
                "Connecting to earshotd at {} (attempt {})…",
                app.source, app.attempt
            ))],
        ),
    };
    draw_message(frame, area, title, lines, theme);
}

fn draw_version_mismatch(frame: &mut Frame, area: Rect, msg: &str, theme: &Theme) {
    let lines = vec![
        Line::styled("The stream speaks another protocol version.", theme.bad()),
        Line::from(""),
        Line::from(msg.to_string()),
    ];
    draw_message(frame, area, "Protocol version mismatch", lines, theme);
}

fn draw_help(frame: &mut Frame, area: Rect, theme: &Theme) {
    let keys = [
        ("1 2 3", "Overview, Explain, Health"),
        ("Tab S-Tab", "next / previous view"),
        ("↑ ↓ ← →", "select emotion (also j k h l)"),
        ("?", "this help"),
        ("q  Ctrl-C", "quit (Esc closes help)"),
    ];
    let mut lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(pad(k, 11), theme.title()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "Values 0..1; 'stale' = no fresh reading.",
        theme.label(),
    ));
    lines.push(Line::styled(
        "· in a sparkline = silence (no claim).",
        theme.label(),
    ));
    let rect = centered(area, 48, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(block("Help", false, theme)),
        rect,
    );
}

// ---------------------------------------------------------------- overview

fn draw_overview(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let [left, right] = Layout::horizontal([Constraint::Fill(5), Constraint::Fill(3)]).areas(area);
    let [emotions, mid, input, history] = Layout::vertical([
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(3),
        Constraint::Min(0),
    ])
    .areas(left);
    let [spectrum, why, health] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(8),
        Constraint::Length(6),
    ])
    .areas(right);
    draw_emotions(frame, emotions, app, theme);
    draw_mid_level(frame, mid, app, theme);
    draw_input(frame, input, app, theme);
    if history.height >= 4 {
        draw_selected_history(frame, history, app, theme);
    }
    draw_spectrum(frame, spectrum, app, theme);
    draw_why(frame, why, app, theme);
    draw_health_summary(frame, health, app, theme);
}

/// Widths of (bar, sparkline) for a row with `fixed` columns of labels.
fn split_row(inner: usize, fixed: usize) -> (usize, usize) {
    let rest = inner.saturating_sub(fixed);
    let bar = (rest * 2 / 5).clamp(6.min(rest), 24);
    (bar, rest - bar)
}

fn span_label(width: usize, app: &App) -> String {
    let secs = (width * per_cell(width)) as f64 * app.expected_hop().as_secs_f64() * app.speed;
    if secs >= 120.0 {
        format!("last {} min", (secs / 60.0).round())
    } else {
        format!("last {} s", secs.round())
    }
}

fn draw_emotions(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let stale = app.is_stale();
    let analysis = app.last.as_ref().and_then(|r| r.analysis.as_ref());
    let inner_w = area.width.saturating_sub(2) as usize;
    // marker, name, value, trend and the spaces between them
    let (bar_w, spark_w) = split_row(inner_w, 1 + 7 + 1 + 1 + 4 + 1 + 1 + 1);
    let mut title = format!("Emotions · {}", span_label(spark_w, app));
    if analysis.is_none() {
        if let Some(state) = app.state() {
            title = format!("Emotions · {}: no claim", state_word(state));
        }
    } else if analysis.is_some_and(|a| !a.in_range) {
        // the model has not heard anything like this window: say so where the numbers are
        title = "Emotions · unfamiliar audio: a guess".into();
    }
    let values = analysis.map(|a| a.emotions.to_array());
    let lines: Vec<Line> = Emotions::<f32>::NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let selected = i == app.selected;
            let color = if stale {
                theme.stale()
            } else {
                theme.emotion(i)
            };
            let (filled, track, value) = match values {
                Some(v) => {
                    let (f, t) = bar(v[i], bar_w);
                    (f, t, format!("{:4.2}", v[i]))
                }
                None => (String::new(), "░".repeat(bar_w), "  --".into()),
            };
            let name_style = if selected {
                theme.selected().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::styled(if selected { "▶" } else { " " }, theme.title()),
                Span::styled(pad(name, 7), name_style),
                Span::raw(" "),
                Span::styled(filled, color),
                Span::styled(track, theme.track()),
                Span::raw(" "),
                Span::styled(value, if stale { theme.stale() } else { theme.title() }),
                Span::raw(" "),
                Span::styled(trend_symbol(app.emotions[i].trend()), color),
                Span::raw(" "),
                Span::styled(
                    sparkline(&app.emotions[i], spark_w, per_cell(spark_w)),
                    color,
                ),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(block(title, stale, theme)),
        area,
    );
}

fn draw_mid_level(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let stale = app.is_stale();
    let analysis = app.last.as_ref().and_then(|r| r.analysis.as_ref());
    let inner_w = area.width.saturating_sub(2) as usize;
    let (bar_w, spark_w) = split_row(inner_w, 13 + 1 + 1 + 4 + 1);
    let values = analysis.map(|a| a.mid_level.to_array());
    let color = if stale {
        theme.stale()
    } else {
        theme.feature()
    };
    let lines: Vec<Line> = MidLevel::<f32>::NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (filled, track, value) = match values {
                Some(v) => {
                    let (f, t) = bar(v[i], bar_w);
                    (f, t, format!("{:4.2}", v[i]))
                }
                None => (String::new(), "░".repeat(bar_w), "  --".into()),
            };
            Line::from(vec![
                Span::raw(pad(explain::feature_label(name), 13)),
                Span::raw(" "),
                Span::styled(filled, color),
                Span::styled(track, theme.track()),
                Span::raw(" "),
                Span::styled(value, if stale { theme.stale() } else { theme.title() }),
                Span::raw(" "),
                Span::styled(
                    sparkline(&app.mid_level[i], spark_w, per_cell(spark_w)),
                    color,
                ),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(block("Mid-level features", stale, theme)),
        area,
    );
}

fn draw_input(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(reading) = &app.last else { return };
    let stale = app.is_stale();
    let inner_w = area.width.saturating_sub(2) as usize;
    let state = state_word(reading.state);
    let head = format!(
        "{} {:<7} {:>6.1} dBFS ",
        state_symbol(reading.state),
        state,
        reading.level_dbfs
    );
    let rest = inner_w.saturating_sub(head.chars().count());
    let bar_w = rest / 2;
    let level01 = (reading.level_dbfs - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS;
    let (filled, track) = bar(level01, bar_w);
    let history = level_history(&app.level_dbfs);
    let spark_w = rest.saturating_sub(bar_w + 1);
    let state_style = match (stale, reading.state) {
        (true, _) => theme.stale(),
        (false, InputState::Music) => theme.good(),
        (false, _) => theme.warn(),
    };
    let color = if stale {
        theme.stale()
    } else {
        theme.positive()
    };
    let line = Line::from(vec![
        Span::styled(head, state_style),
        Span::styled(filled, color),
        Span::styled(track, theme.track()),
        Span::raw(" "),
        Span::styled(sparkline(&history, spark_w, 1), color),
    ]);
    frame.render_widget(
        Paragraph::new(line).block(block("Input", stale, theme)),
        area,
    );
}

/// The selected emotion over time, several rows tall (only where there is room).
fn draw_selected_history(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let stale = app.is_stale();
    let i = app.selected;
    let width = area.width.saturating_sub(2) as usize;
    let per = per_cell(width);
    let values: Vec<Option<f32>> = app.emotions[i].iter().collect();
    let mut bars: Vec<Option<u64>> = values
        .rchunks(per)
        .take(width)
        .map(|chunk| {
            let known: Vec<f32> = chunk
                .iter()
                .flatten()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            (!known.is_empty())
                .then(|| (known.iter().sum::<f32>() / known.len() as f32).clamp(0.0, 1.0))
                .map(|v| (v * 100.0).round() as u64)
        })
        .collect();
    bars.reverse();
    let title = format!("{} · {}", app.selected_name(), span_label(width, app));
    let sparkline = Sparkline::default()
        .block(block(title, stale, theme))
        .data(bars)
        .max(100)
        .absent_value_symbol("·")
        .style(if stale {
            theme.stale()
        } else {
            theme.emotion(i)
        });
    frame.render_widget(sparkline, area);
}

/// Levels mapped to 0..1 over the meter's range, for a sparkline.
fn level_history(levels: &History) -> History {
    let mut h = History::default();
    for v in levels.iter() {
        h.push(v.map(|db| (db - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS));
    }
    h
}

fn draw_spectrum(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let stale = app.is_stale();
    let b = block("Spectrum · low→high ↑", stale, theme);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let (w, h) = (inner.width as usize, inner.height as usize);
    if w == 0 || h == 0 {
        return;
    }
    let columns: Vec<&Vec<f32>> = app.spectra.iter().rev().take(w).collect::<Vec<_>>();
    let lines: Vec<Line> = (0..h)
        .map(|row| {
            let band_row = h - 1 - row; // row 0 is the top: highest bands
            let mut spans = vec![Span::raw(" ".repeat(w.saturating_sub(columns.len())))];
            for spectrum in columns.iter().rev() {
                let nb = spectrum.len();
                let v = if nb == 0 {
                    0.0
                } else {
                    let lo = band_row * nb / h;
                    let hi = ((band_row + 1) * nb / h).max(lo + 1).min(nb);
                    spectrum[lo.min(nb - 1)..hi]
                        .iter()
                        .copied()
                        .filter(|v| v.is_finite())
                        .fold(0.0f32, f32::max)
                };
                let shade = SHADE[((v.clamp(0.0, 1.0) * 4.0).ceil() as usize).min(4)];
                let style = if stale { theme.stale() } else { theme.heat(v) };
                spans.push(Span::styled(shade.to_string(), style));
            }
            Line::from(spans)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_why(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let stale = app.is_stale();
    let name = app.selected_name();
    let analysis = app.last.as_ref().and_then(|r| r.analysis.as_ref());
    let mut lines = Vec::new();
    match analysis {
        Some(a) => {
            let i = app.selected;
            let value = a.emotions.to_array()[i];
            let expl = a.explanation.to_array()[i];
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{name} {value:.2}"),
                    if stale {
                        theme.stale()
                    } else {
                        theme.emotion(i)
                    },
                ),
                Span::styled(format!(" · {}", Degree::of(value).word()), theme.label()),
            ]));
            lines.push(Line::styled(
                format!("{}.", explain::sentence(name, value, &expl)),
                if stale { theme.stale() } else { Style::new() },
            ));
        }
        None => lines.push(Line::styled(
            "No music now: the model makes no claim.",
            theme.label(),
        )),
    }
    let b = block(format!("Why {name}? · 2 Explain"), stale, theme);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(b),
        area,
    );
}

fn draw_health_summary(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(r) = &app.last else { return };
    let stale = app.is_stale();
    let v = if stale { theme.stale() } else { Style::new() };
    let hop = app
        .measured_hop()
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into());
    let lost = r.health.dropped_frames + r.health.xruns + app.missed;
    let lines = vec![
        Line::styled(format!("model {}", r.model_id), v),
        Line::styled(format!("{:.1} ms · hop {hop}", r.latency_ms), v),
        Line::styled(
            format!(
                "drop {} · xrun {} · miss {}",
                r.health.dropped_frames, r.health.xruns, app.missed
            ),
            if lost > 0 && !stale { theme.warn() } else { v },
        ),
        Line::styled(
            format!(
                "up {} · clients {}",
                clock(r.health.uptime_s),
                r.health.clients
            ),
            v,
        ),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(block("Health · 3", stale, theme)),
        area,
    );
}

// ---------------------------------------------------------------- explain

/// The smallest round scale that holds `max_abs`.
fn nice_scale(max_abs: f32) -> f32 {
    [0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
        .into_iter()
        .find(|s| max_abs <= *s)
        .unwrap_or(max_abs.max(1.0))
}

/// One diverging bar around a centre axis: `half` cells each side.
fn diverging(effect: f32, scale: f32, half: usize) -> (String, String, String) {
    let cells = if half > 0 && effect.is_finite() && effect.abs() >= 0.005 {
        ((effect.abs() / scale * half as f32).round() as usize).clamp(1, half)
    } else {
        0
    };
    if effect < 0.0 {
        (
            format!("{}{}", " ".repeat(half - cells), "█".repeat(cells)),
            "│".into(),
            " ".repeat(half),
        )
    } else {
        (
            " ".repeat(half),
            "│".into(),
            format!("{}{}", "█".repeat(cells), " ".repeat(half - cells)),
        )
    }
}

fn draw_explain(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let stale = app.is_stale();
    let i = app.selected;
    let name = app.selected_name();
    let b = block(format!("Explain · {name}"), stale, theme);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let dim = |s: Style| if stale { theme.stale() } else { s };

    let mut selector = vec![Span::styled("◀ ", theme.label())];
    for (j, n) in Emotions::<f32>::NAMES.iter().enumerate() {
        let style = if j == i {
            theme.selected().add_modifier(Modifier::BOLD)
        } else {
            theme.label()
        };
        selector.push(Span::styled(n.to_string(), style));
        selector.push(Span::raw(" "));
    }
    selector.push(Span::styled("▶", theme.label()));
    let mut lines = vec![Line::from(selector), Line::from("")];

    let current = app.last.as_ref().and_then(|r| r.analysis.as_ref());
    let shown = current.or(app.last_analysis.as_ref().map(|(_, a)| a));
    let Some(analysis) = shown else {
        lines.push(Line::styled(
            "No music reading yet: the model explains only what it claims.",
            theme.label(),
        ));
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        return;
    };
    let silent_now = current.is_none();
    let value = analysis.emotions.to_array()[i];
    let expl = analysis.explanation.to_array()[i];
    let effects_sum = expl.total() - expl.bias;
    lines.push(Line::from(vec![
        Span::styled(
            format!("{name} {value:.2}"),
            dim(theme.emotion(i)).add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!(" ({})", Degree::of(value).word()), theme.label()),
        Span::raw(format!(
            "  =  bias {:.2}  +  effects {effects_sum:+.2}",
            expl.bias
        )),
    ]));
    if silent_now {
        let seq = app
            .last_analysis
            .as_ref()
            .map(|(s, _)| *s)
            .unwrap_or_default();
        lines.push(Line::styled(
            format!("No music now: showing the last music reading (#{seq})."),
            theme.warn(),
        ));
    } else {
        lines.push(Line::from(""));
    }

    let fixed = 13 + 1 + 5 + 1 + 5 + 1 + 6 + 1;
    let chart_w = (inner.width as usize).saturating_sub(fixed);
    let half = chart_w.saturating_sub(1) / 2;
    let effects = expl.effects.to_array();
    let scale = nice_scale(effects.iter().fold(0.0f32, |m, e| m.max(e.abs())));
    let means = app.mid_level_means().map(|m| m.to_array());
    let mids = analysis.mid_level.to_array();
    let head = format!(
        "{} {:>5} {:>5} {:>6} ",
        pad("feature", 13),
        "value",
        "mean",
        "effect"
    );
    let left_label = "◀ pulls down";
    let right_label = "pushes up ▶";
    let chart_head = format!("{} {right_label:>half$}", pad(left_label, half));
    lines.push(Line::from(vec![
        Span::styled(head, theme.label()),
        Span::styled(chart_head, theme.label()),
    ]));
    for (f, fname) in MidLevel::<f32>::NAMES.iter().enumerate() {
        let e = effects[f];
        let (l, axis, r) = diverging(e, scale, half);
        let mean = means
            .map(|m| format!("{:5.2}", m[f]))
            .unwrap_or_else(|| "    -".into());
        let bar_style = dim(if e < 0.0 {
            theme.negative()
        } else {
            theme.positive()
        });
        lines.push(Line::from(vec![
            Span::raw(pad(explain::feature_label(fname), 13)),
            Span::styled(format!(" {:5.2} {mean} ", mids[f]), dim(Style::new())),
            Span::styled(format!("{:>6} ", signed(e)), dim(theme.title())),
            Span::styled(l, bar_style),
            Span::styled(axis, theme.label()),
            Span::styled(r, bar_style),
        ]));
    }
    let centre = format!("bias {:.2}", expl.bias);
    let left_tick = format!("-{scale}");
    let right_tick = format!("+{scale}");
    let side = half.saturating_sub(centre.chars().count() / 2);
    let right_w = (2 * half + 1).saturating_sub(side + centre.chars().count());
    let axis = format!("{}{centre}{right_tick:>right_w$}", pad(&left_tick, side));
    lines.push(Line::from(vec![
        Span::raw(" ".repeat(fixed)),
        Span::styled(axis, theme.label()),
    ]));
    lines.push(Line::from(""));
    lines.push(Line::styled(
        format!("{}.", explain::sentence(name, value, &expl)),
        dim(theme.title()),
    ));
    lines.push(Line::styled(
        "effect = weight × (feature − mean); value = bias + Σ effects",
        theme.label(),
    ));
    let spark_w = (inner.width as usize).saturating_sub(fixed);
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::styled(
            pad(&format!("{name} {}", span_label(spark_w, app)), fixed),
            theme.label(),
        ),
        Span::styled(
            sparkline(&app.emotions[i], spark_w, per_cell(spark_w)),
            dim(theme.emotion(i)),
        ),
    ]));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

// ---------------------------------------------------------------- health

fn draw_health(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let stale = app.is_stale();
    let [top, latency, warnings] = Layout::vertical([
        Constraint::Length(15),
        Constraint::Length(3),
        Constraint::Min(0),
    ])
    .areas(area);
    let [conn, daemon] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(top);
    let v = if stale { theme.stale() } else { Style::new() };
    let (state, state_style) = connection_text(app, theme);

    let mut c = vec![
        kv("state", state, state_style, theme),
        kv("source", app.source.clone(), Style::new(), theme),
    ];
    if let Connection::Lost { reason, .. } = &app.connection {
        c.push(kv("reason", reason.clone(), theme.bad(), theme));
    }
    c.push(kv("attempt", app.attempt.to_string(), Style::new(), theme));
    c.push(kv(
        "connects",
        app.connects.to_string(),
        Style::new(),
        theme,
    ));
    if let Some(since) = app.connected_since {
        c.push(kv(
            "connected",
            human(app.now.saturating_duration_since(since)),
            Style::new(),
            theme,
        ));
    }
    if let Some(age) = app.age() {
        c.push(kv(
            "last read",
            format!("{:.1} s ago", age.as_secs_f64()),
            v,
            theme,
        ));
    }
    c.push(kv(
        "readings",
        app.readings.to_string(),
        Style::new(),
        theme,
    ));
    c.push(kv(
        "missed",
        format!("{} (seq gaps)", app.missed),
        if app.missed > 0 {
            theme.warn()
        } else {
            Style::new()
        },
        theme,
    ));
    c.push(kv(
        "bad lines",
        app.bad_lines.to_string(),
        if app.bad_lines > 0 {
            theme.warn()
        } else {
            Style::new()
        },
        theme,
    ));
    c.push(outputs_line(app, theme));
    frame.render_widget(
        Paragraph::new(c)
            .wrap(Wrap { trim: false })
            .block(block("Connection", false, theme)),
        conn,
    );

    let mut d = Vec::new();
    if let Some(h) = &app.hello {
        d.push(kv("daemon", h.daemon.clone(), v, theme));
        d.push(kv("audio", h.source.clone(), v, theme));
    }
    if let Some(model) = app.model_id() {
        d.push(kv("model", model.to_string(), v, theme));
    }
    let nominal = app.hello.as_ref().map(|h| h.hop_ms).unwrap_or(0);
    let measured = app
        .measured_hop()
        .map(|m| {
            format!(
                "{:.2} s ({:.2} Hz) measured",
                m.as_secs_f64(),
                1.0 / m.as_secs_f64().max(1e-6)
            )
        })
        .unwrap_or_else(|| "-".into());
    d.push(kv("hop", measured, v, theme));
    d.push(kv(
        "hop nominal",
        format!("{:.2} s", f64::from(nominal) / 1000.0),
        v,
        theme,
    ));
    if let Some(h) = &app.hello {
        d.push(kv(
            "window",
            format!(
                "{:.1} s, smoothing {:.1} s",
                f64::from(h.window_ms) / 1000.0,
                f64::from(h.smoothing_ms) / 1000.0
            ),
            v,
            theme,
        ));
    }
    if let Some(r) = &app.last {
        let lat: Vec<f32> = app.latency_ms.iter().flatten().collect();
        let avg = if lat.is_empty() {
            0.0
        } else {
            lat.iter().sum::<f32>() / lat.len() as f32
        };
        let max = lat.iter().copied().fold(0.0f32, f32::max);
        d.push(kv(
            "latency",
            format!("{:.1} ms (avg {avg:.1}, max {max:.1})", r.latency_ms),
            v,
            theme,
        ));
        d.push(kv("uptime", clock(r.health.uptime_s), v, theme));
        let count = |n: u64| if n > 0 && !stale { theme.warn() } else { v };
        d.push(kv(
            "dropped",
            format!("{} frames", r.health.dropped_frames),
            count(r.health.dropped_frames),
            theme,
        ));
        d.push(kv(
            "xruns",
            r.health.xruns.to_string(),
            count(r.health.xruns),
            theme,
        ));
        d.push(kv(
            "audio lost",
            format!("{} reopened", r.health.reconnects),
            count(r.health.reconnects),
            theme,
        ));
        d.push(kv(
            "slow subs",
            format!("{} readings dropped", r.health.dropped_readings),
            count(r.health.dropped_readings),
            theme,
        ));
        d.push(kv("clients", r.health.clients.to_string(), v, theme));
    }
    frame.render_widget(
        Paragraph::new(d).block(block("Daemon", stale, theme)),
        daemon,
    );

    let lat_w = latency.width.saturating_sub(2) as usize;
    let max = app.latency_ms.iter().flatten().fold(1.0f32, f32::max);
    let mut scaled = History::default();
    for x in app.latency_ms.iter() {
        scaled.push(x.map(|ms| ms / max));
    }
    frame.render_widget(
        Paragraph::new(Line::styled(
            sparkline(&scaled, lat_w, 1),
            if stale {
                theme.stale()
            } else {
                theme.feature()
            },
        ))
        .block(block(format!("Latency · max {max:.1} ms"), stale, theme)),
        latency,
    );

    let lines: Vec<Line> = if app.warnings.is_empty() {
        vec![Line::styled("none", theme.label())]
    } else {
        app.warnings
            .iter()
            .rev()
            .map(|w| Line::styled(w.clone(), theme.warn()))
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block("Warnings (newest first)", false, theme)),
        warnings,
    );
}

/// The daemon's outputs and their states, troubled ones marked.
fn outputs_line<'a>(app: &App, theme: &Theme) -> Line<'a> {
    let stale = app.is_stale();
    let outputs = app.last.as_ref().map(|r| r.health.outputs.as_slice());
    let mut spans = vec![Span::styled(pad("outputs", 12), theme.label())];
    for (i, o) in outputs.unwrap_or_default().iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", theme.label()));
        }
        let (word, style) = match o.state {
            OutputState::Ok => ("ok", theme.good()),
            OutputState::Starting => ("starting", Style::new()),
            OutputState::Retrying => ("retrying", theme.warn()),
            OutputState::Down => ("down", theme.bad()),
            OutputState::Closed => ("closed", theme.label()),
            OutputState::Failed => ("failed", theme.bad()),
            OutputState::Unknown => ("?", theme.label()),
        };
        spans.push(Span::raw(format!("{} ", o.name)));
        spans.push(Span::styled(
            word,
            if stale { theme.stale() } else { style },
        ));
        if o.errors > 0 {
            spans.push(Span::styled(format!(" ({} err)", o.errors), theme.label()));
        }
    }
    if spans.len() == 1 {
        spans.push(Span::styled("-", theme.label()));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Action, FeedEvent};
    use crate::demo;
    use crate::theme::ColorMode;
    use earshot_protocol::Message;
    use ratatui::backend::TestBackend;
    use ratatui::style::Color;
    use ratatui::Terminal;
    use std::time::Instant;

    /// A console that has seen `n` music readings, one per second; its clock is at the last one.
    fn live(n: u64) -> App {
        let t0 = Instant::now();
        let mut app = App::new("tcp 127.0.0.1:7878", t0);
        app.on_feed(FeedEvent::Connecting { attempt: 1 }, t0);
        app.on_feed(FeedEvent::Connected, t0);
        app.on_feed(FeedEvent::Message(demo::hello()), t0);
        for seq in 0..n {
            let msg = if (40..52).contains(&seq) {
                demo::silence_message(seq)
            } else {
                demo::reading_message(seq)
            };
            app.on_feed(FeedEvent::Message(msg), t0 + Duration::from_secs(seq));
        }
        app
    }

    fn later(app: &mut App, secs: f64) {
        let now = app.now + Duration::from_secs_f64(secs);
        app.tick(now);
    }

    fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
        render_with(app, w, h, ColorMode::Ansi256)
    }

    fn render_with(app: &App, w: u16, h: u16, mode: ColorMode) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal.draw(|f| draw(f, app, &Theme::new(mode))).unwrap();
        terminal
    }

    fn with_view(mut app: App, view: View) -> App {
        app.on_action(Action::Show(view));
        app
    }

    /// A console fed by a hostile stream: escape sequences in every string,
    /// numbers past f32's range (which decode as infinities), 300 bands.
    fn hostile() -> App {
        let t0 = Instant::now();
        let esc = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m";
        let mut app = App::new(format!("tcp {esc}"), t0);
        app.on_feed(FeedEvent::Connected, t0);
        let Message::Hello(mut hello) = demo::hello() else {
            unreachable!("demo::hello is a hello")
        };
        hello.model_id = format!("edge{esc}");
        hello.source = format!("demo{esc}");
        hello.daemon = format!("0.1{esc}");
        app.on_feed(FeedEvent::Message(Message::Hello(hello)), t0);
        for seq in 0..40 {
            let mut r = demo::reading(seq);
            r.level_dbfs = f32::INFINITY;
            r.latency_ms = f32::NEG_INFINITY;
            r.spectrum = vec![f32::INFINITY; 300];
            r.model_id = format!("edge{esc}");
            if let Some(a) = r.analysis.as_mut() {
                a.emotions = a.emotions.map(|_| f32::INFINITY);
                a.mid_level = a.mid_level.map(|_| f32::NEG_INFINITY);
                for e in [&mut a.explanation.tension, &mut a.explanation.valence] {
                    e.bias = f32::INFINITY;
                    e.effects = e.effects.map(|_| f32::INFINITY);
                }
            }
            let at = t0 + Duration::from_secs(seq);
            app.on_feed(FeedEvent::Message(Message::Reading(Box::new(r))), at);
        }
        app.on_feed(
            FeedEvent::BadLine(format!("x: unknown field `{esc}`")),
            app.now,
        );
        app
    }

    #[test]
    fn hostile_stream_draws_without_control_characters() {
        for view in View::ALL {
            for (w, h) in [(80, 24), (120, 40)] {
                let screen = render(&with_view(hostile(), view), w, h)
                    .backend()
                    .to_string();
                assert!(
                    !screen.chars().any(|c| c.is_control() && c != '\n'),
                    "{view:?} {w}x{h}:\n{screen:?}"
                );
            }
        }
        let screen = render(&with_view(hostile(), View::Health), 120, 40)
            .backend()
            .to_string();
        assert!(screen.contains("edge\\u{1b}]0;pwned"), "{screen}");
    }

    #[test]
    fn a_reading_unlike_the_training_music_is_marked() {
        let mut app = live(150);
        let before = render(&app, 80, 24).backend().to_string();
        assert!(!before.contains("unfamiliar"), "{before}");
        if let Some(a) = app.last.as_mut().and_then(|r| r.analysis.as_mut()) {
            a.in_range = false;
        }
        let screen = render(&app, 80, 24).backend().to_string();
        assert!(screen.contains("unfamiliar audio: a guess"), "{screen}");
    }

    #[test]
    fn overview_80x24() {
        insta::assert_snapshot!(render(&live(150), 80, 24).backend());
    }

    #[test]
    fn explain_80x24() {
        insta::assert_snapshot!(render(&with_view(live(150), View::Explain), 80, 24).backend());
    }

    #[test]
    fn health_80x24() {
        let mut app = with_view(live(150), View::Health);
        app.on_feed(
            FeedEvent::BadLine("tcp 127.0.0.1:7878: line 9: not a JSON object".into()),
            app.now,
        );
        insta::assert_snapshot!(render(&app, 80, 24).backend());
    }

    #[test]
    fn overview_120x40() {
        insta::assert_snapshot!(render(&live(300), 120, 40).backend());
    }

    #[test]
    fn explain_120x40() {
        let mut app = with_view(live(300), View::Explain);
        app.on_action(Action::SelectPrev);
        insta::assert_snapshot!(render(&app, 120, 40).backend());
    }

    #[test]
    fn health_120x40() {
        insta::assert_snapshot!(render(&with_view(live(300), View::Health), 120, 40).backend());
    }

    #[test]
    fn no_daemon_80x24() {
        let t0 = Instant::now();
        let mut app = App::new("tcp 127.0.0.1:7878", t0);
        app.on_feed(FeedEvent::Connecting { attempt: 1 }, t0);
        app.on_feed(
            FeedEvent::Lost {
                reason: "cannot connect to tcp 127.0.0.1:7878: Connection refused (os error 111)"
                    .into(),
            },
            t0,
        );
        app.on_feed(
            FeedEvent::Connecting { attempt: 4 },
            t0 + Duration::from_secs(4),
        );
        insta::assert_snapshot!(render(&app, 80, 24).backend());
    }

    #[test]
    fn disconnected_keeps_stale_values_80x24() {
        let mut app = live(150);
        app.on_feed(
            FeedEvent::Lost {
                reason: "the daemon closed the connection".into(),
            },
            app.now,
        );
        app.on_feed(FeedEvent::Connecting { attempt: 3 }, app.now);
        later(&mut app, 7.0);
        assert!(app.is_stale());
        insta::assert_snapshot!(render(&app, 80, 24).backend());
    }

    #[test]
    fn stale_80x24() {
        let mut app = live(150);
        later(&mut app, 5.0);
        insta::assert_snapshot!(render(&app, 80, 24).backend());
    }

    #[test]
    fn silence_80x24() {
        insta::assert_snapshot!(render(&live(50), 80, 24).backend());
    }

    #[test]
    fn silence_explain_80x24() {
        insta::assert_snapshot!(render(&with_view(live(50), View::Explain), 80, 24).backend());
    }

    #[test]
    fn version_mismatch_80x24() {
        let mut app = live(10);
        let err = earshot_protocol::decode(r#"{"v":2,"type":"hello"}"#).unwrap_err();
        app.on_feed(FeedEvent::VersionMismatch(err.to_string()), app.now);
        let screen = render(&app, 80, 24).backend().to_string();
        assert!(screen.contains("protocol version 2 is not"), "{screen}");
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn help_80x24() {
        let mut app = live(150);
        app.on_action(Action::ToggleHelp);
        insta::assert_snapshot!(render(&app, 80, 24).backend());
    }

    #[test]
    fn tiny_and_zero_sizes_do_not_panic() {
        let mut no_daemon = App::new("tcp x", Instant::now());
        no_daemon.on_feed(
            FeedEvent::Lost {
                reason: "refused".into(),
            },
            no_daemon.now,
        );
        let mut help = live(60);
        help.on_action(Action::ToggleHelp);
        let states = [live(0), live(60), live(45), no_daemon, help];
        for mut app in states {
            for view in View::ALL {
                app.on_action(Action::Show(view));
                for (w, h) in [
                    (0, 0),
                    (1, 1),
                    (0, 24),
                    (80, 0),
                    (2, 2),
                    (10, 3),
                    (20, 5),
                    (40, 10),
                    (80, 1),
                    (1, 24),
                    (79, 23),
                ] {
                    for mode in [ColorMode::None, ColorMode::Ansi16, ColorMode::Ansi256] {
                        render_with(&app, w, h, mode);
                    }
                }
            }
        }
    }

    #[test]
    fn no_colour_mode_draws_no_colours() {
        for view in View::ALL {
            let app = with_view(live(150), view);
            let terminal = render_with(&app, 80, 24, ColorMode::None);
            for cell in terminal.backend().buffer().content() {
                assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{view:?}");
            }
        }
        let terminal = render_with(&live(150), 80, 24, ColorMode::Ansi16);
        assert!(terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .all(|c| !matches!(c.fg, Color::Indexed(_) | Color::Rgb(..))));
    }

    #[test]
    fn bars_and_sparklines() {
        assert_eq!(bar(0.5, 4), ("██".into(), "░░".into()));
        assert_eq!(bar(1.5, 2), ("██".into(), "".into()));
        assert_eq!(bar(f32::NAN, 2), ("".into(), "░░".into()));
        assert_eq!(bar(0.25, 2), ("▌".into(), "░".into()));
        assert_eq!(bar(0.0625, 2), ("▏".into(), "░".into()));
        let mut h = History::default();
        h.push(Some(0.0));
        h.push(None);
        h.push(Some(1.0));
        assert_eq!(sparkline(&h, 4, 1), " ▁·█");
        assert_eq!(sparkline(&h, 1, 2), "█");
        assert_eq!(sparkline(&h, 0, 1), "");
    }
}
