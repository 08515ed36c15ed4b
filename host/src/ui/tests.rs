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

/// A night in the daemon's history: 12 h of 15-minute buckets ending at
/// 02:00 UTC, music from 18:00, a quiet spell around midnight.
fn night() -> earshot_protocol::History {
    use earshot_protocol::{Emotions, HistoryBucket, MidLevel, Values};
    let q = 900_000u64;
    let end = 1_800_000_000_000u64 + 18 * 3_600_000; // 02:00 UTC (the first is 08:00)
    let buckets = (0..48u64)
        .filter(|i| *i >= 4) // the daemon started at 14:00
        .map(|i| {
            let start = end - (48 - i) * q;
            let music = if (16..40).contains(&i) && !(38..40).contains(&i) {
                0.9
            } else {
                0.0
            };
            let x = i as f32 / 48.0;
            HistoryBucket {
                start_ms: start,
                readings: 900,
                music_share: music,
                means: (music > 0.0).then(|| Values {
                    emotions: Emotions::from_array([
                        0.3 + 0.4 * x,
                        0.2 + 0.6 * x,
                        0.5 - 0.3 * x,
                        0.1,
                        0.1,
                        0.2 + 0.5 * x,
                        0.4 - 0.3 * x,
                        0.35,
                    ]),
                    mid_level: MidLevel::from_array([0.5; 7]),
                }),
            }
        })
        .collect();
    earshot_protocol::History {
        span_ms: 12 * 3_600_000,
        bucket_ms: q,
        buckets,
        unavailable: None,
    }
}

fn with_history(history: earshot_protocol::History) -> App {
    let mut app = live(150);
    let (tx, _rx) = std::sync::mpsc::channel();
    app.lookback.requests = Some(tx);
    app.on_action(Action::Show(View::History));
    let at = app.now;
    app.on_feed(FeedEvent::Message(Message::History(history)), at);
    later(&mut app, 12.0);
    app
}

#[test]
fn history_80x24() {
    insta::assert_snapshot!(render(&with_history(night()), 80, 24).backend());
}

#[test]
fn history_120x40() {
    insta::assert_snapshot!(render(&with_history(night()), 120, 40).backend());
}

#[test]
fn history_says_what_to_do_without_one() {
    let mut none = night();
    none.buckets.clear();
    none.unavailable =
        Some("this daemon keeps no history: set [history] path in its config".into());
    let screen = render(&with_history(none), 80, 24).backend().to_string();
    assert!(screen.contains("keeps no history"), "{screen}");
    assert!(screen.contains("docs/install.md"), "{screen}");
    // a replay has no daemon to ask
    let replay = with_view(live(150), View::History);
    let screen = render(&replay, 80, 24).backend().to_string();
    assert!(screen.contains("a replay has none"), "{screen}");
}
