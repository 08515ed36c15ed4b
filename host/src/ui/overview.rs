//! View 1: emotions, mid-level features, input, spectrum, why.

use super::*;

pub(super) fn draw_overview(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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
pub(super) fn split_row(inner: usize, fixed: usize) -> (usize, usize) {
    let rest = inner.saturating_sub(fixed);
    let bar = (rest * 2 / 5).clamp(6.min(rest), 24);
    (bar, rest - bar)
}

pub(super) fn span_label(width: usize, app: &App) -> String {
    let secs = (width * per_cell(width)) as f64 * app.expected_hop().as_secs_f64() * app.speed;
    if secs >= 120.0 {
        format!("last {} min", (secs / 60.0).round())
    } else {
        format!("last {} s", secs.round())
    }
}

pub(super) fn draw_emotions(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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

pub(super) fn draw_mid_level(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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

pub(super) fn draw_input(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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
pub(super) fn draw_selected_history(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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
pub(super) fn level_history(levels: &History) -> History {
    let mut h = History::default();
    for v in levels.iter() {
        h.push(v.map(|db| (db - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS));
    }
    h
}

pub(super) fn draw_spectrum(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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

pub(super) fn draw_why(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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

pub(super) fn draw_health_summary(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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
