//! What every view shares: header, status bar, waiting and help overlays.

use super::*;

pub(super) fn draw_header(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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
pub(super) fn connection_text(app: &App, theme: &Theme) -> (String, Style) {
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

pub(super) fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let (text, style) = connection_text(app, theme);
    let width = area.width as usize;
    let mut left = format!(" {text}");
    if app.bad_lines > 0 {
        left.push_str(&format!(" · ⚠ {} skipped (3)", app.bad_lines));
    }
    let source = format!("  {}", app.source);
    let keys_long = "1-4 view  ↑↓ emotion  ? help  q quit ";
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

pub(super) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub(super) fn draw_message(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    lines: Vec<Line>,
    theme: &Theme,
) {
    let rect = centered(area, 72, lines.len() as u16 + 4);
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block(title, false, theme).padding(ratatui::widgets::Padding::horizontal(1)));
    frame.render_widget(Clear, rect);
    frame.render_widget(p, rect);
}

pub(super) fn draw_waiting(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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

pub(super) fn draw_version_mismatch(frame: &mut Frame, area: Rect, msg: &str, theme: &Theme) {
    let lines = vec![
        Line::styled("The stream speaks another protocol version.", theme.bad()),
        Line::from(""),
        Line::from(msg.to_string()),
    ];
    draw_message(frame, area, "Protocol version mismatch", lines, theme);
}

pub(super) fn draw_help(frame: &mut Frame, area: Rect, theme: &Theme) {
    let keys = [
        ("1 2 3 4", "Overview, Explain, Health, History"),
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
