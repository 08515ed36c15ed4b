//! View 3: connection, daemon counters (the input's state among them),
//! outputs, latency, warnings.

use super::*;
use earshot_protocol::{InputHealth, SourceState};

pub(super) fn draw_health(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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
        let (input, input_style) = input_text(&r.health.input, theme);
        d.push(kv(
            "input",
            input,
            if stale { theme.stale() } else { input_style },
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

/// The input's state and restarts, in the 26 columns the daemon box has at
/// 80x24: `ok · 0 restarts`, `lost 41 s · 2 restarts`, `FAILED · 6 restarts`.
fn input_text(input: &InputHealth, theme: &Theme) -> (String, Style) {
    let restarts = match input.restarts {
        1 => "1 restart".to_string(),
        n => format!("{n} restarts"),
    };
    match input.state {
        SourceState::Ok if input.restarts > 0 => (format!("ok · {restarts}"), theme.warn()),
        SourceState::Ok => (format!("ok · {restarts}"), Style::new()),
        SourceState::NoInput => (
            format!("lost {} · {restarts}", short(input.no_audio_s)),
            theme.bad(),
        ),
        SourceState::Failed => (format!("FAILED · {restarts}"), theme.bad()),
        SourceState::Unknown => (format!("? · {restarts}"), theme.label()),
    }
}

/// `41 s`, `12 min`, `5 h`.
fn short(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

/// The daemon's outputs and their states, troubled ones marked.
pub(super) fn outputs_line<'a>(app: &App, theme: &Theme) -> Line<'a> {
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

    fn text(state: SourceState, restarts: u64, no_audio_s: u64) -> String {
        let input = InputHealth {
            state,
            restarts,
            no_audio_s,
        };
        input_text(&input, &Theme::new(crate::theme::ColorMode::None)).0
    }

    #[test]
    fn input_line_says_whether_audio_comes_and_fits_the_daemon_box() {
        assert_eq!(text(SourceState::Ok, 0, 0), "ok · 0 restarts");
        assert_eq!(text(SourceState::Ok, 1, 0), "ok · 1 restart");
        assert_eq!(text(SourceState::NoInput, 2, 41), "lost 41 s · 2 restarts");
        assert_eq!(
            text(SourceState::NoInput, 3, 600),
            "lost 10 min · 3 restarts"
        );
        assert_eq!(
            text(SourceState::NoInput, 3, 86_400),
            "lost 24 h · 3 restarts"
        );
        assert_eq!(text(SourceState::Failed, 6, 200), "FAILED · 6 restarts");
        assert_eq!(text(SourceState::Unknown, 0, 0), "? · 0 restarts");
        // The daemon box at 80x24 has 26 columns for a value.
        for (s, n, t) in [
            (SourceState::NoInput, 99, 119),
            (SourceState::NoInput, 99, 7199),
            (SourceState::Failed, 9999, 0),
        ] {
            let t = text(s, n, t);
            assert!(t.chars().count() <= 26, "{t}");
        }
    }
}
