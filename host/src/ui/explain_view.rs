//! View 2: one emotion as bias plus seven contributions.

use super::*;

/// The smallest round scale that holds `max_abs`.
pub(super) fn nice_scale(max_abs: f32) -> f32 {
    [0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
        .into_iter()
        .find(|s| max_abs <= *s)
        .unwrap_or(max_abs.max(1.0))
}

/// One diverging bar around a centre axis: `half` cells each side.
pub(super) fn diverging(effect: f32, scale: f32, half: usize) -> (String, String, String) {
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

pub(super) fn draw_explain(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
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
