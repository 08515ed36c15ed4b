//! The event loop: merges feed events, keys and resizes from one channel into
//! the [`App`] and redraws, at most once per batch of events, plus when values
//! go stale or a shown duration needs counting. Works with any ratatui backend.

use std::io;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Instant;

use ratatui::backend::Backend;
use ratatui::crossterm::event::{
    self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use ratatui::Terminal;

use crate::app::{Action, App, FeedEvent, View};
use crate::theme::Theme;
use crate::ui;

/// Events applied between two redraws at most; keeps a flood from starving the screen.
const MAX_BATCH: usize = 1000;

/// Everything the loop reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Feed(FeedEvent),
    Action(Action),
    Resize,
}

impl From<FeedEvent> for Event {
    fn from(e: FeedEvent) -> Self {
        Event::Feed(e)
    }
}

/// The action a key asks for, if any.
pub fn key_action(key: KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Esc => Action::Back,
        KeyCode::Char('1') => Action::Show(View::Overview),
        KeyCode::Char('2') => Action::Show(View::Explain),
        KeyCode::Char('3') => Action::Show(View::Health),
        KeyCode::Char('4') => Action::Show(View::History),
        KeyCode::Tab => Action::NextView,
        KeyCode::BackTab => Action::PrevView,
        KeyCode::Down | KeyCode::Right | KeyCode::Char('j') | KeyCode::Char('l') => {
            Action::SelectNext
        }
        KeyCode::Up | KeyCode::Left | KeyCode::Char('k') | KeyCode::Char('h') => Action::SelectPrev,
        KeyCode::Char('?') | KeyCode::F(1) => Action::ToggleHelp,
        _ => return None,
    })
}

/// Reads terminal events on a new thread and sends the ones that matter.
pub fn spawn_input(tx: Sender<Event>) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("earshot-input".into())
        .spawn(move || loop {
            let event = match event::read() {
                Ok(TermEvent::Key(key)) => key_action(key).map(Event::Action),
                Ok(TermEvent::Resize(..)) => Some(Event::Resize),
                Ok(_) => None,
                // The terminal is gone (hung-up SSH session): nothing left to show.
                Err(_) => Some(Event::Action(Action::Quit)),
            };
            if let Some(event) = event {
                if tx.send(event).is_err() {
                    return;
                }
            }
        })
}

fn apply(app: &mut App, event: Event, now: Instant) {
    match event {
        Event::Feed(feed) => app.on_feed(feed, now),
        Event::Action(action) => app.on_action(action),
        Event::Resize => {}
    }
}

/// Runs until the user quits or every sender is gone.
pub fn run_app<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    rx: &Receiver<Event>,
    theme: &Theme,
) -> io::Result<()> {
    app.tick(Instant::now());
    terminal.draw(|f| ui::draw(f, app, theme))?;
    while !app.should_quit() {
        let first = match rx.recv_timeout(app.next_wakeup()) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let now = Instant::now();
        app.tick(now);
        if let Some(event) = first {
            apply(app, event, now);
        }
        for event in rx.try_iter().take(MAX_BATCH) {
            apply(app, event, now);
        }
        terminal.draw(|f| ui::draw(f, app, theme))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;
    use crate::theme::ColorMode;
    use ratatui::backend::TestBackend;
    use std::sync::mpsc;

    #[test]
    fn keys_map_to_actions() {
        let k = |code| key_action(KeyEvent::new(code, KeyModifiers::NONE));
        assert_eq!(k(KeyCode::Char('q')), Some(Action::Quit));
        assert_eq!(k(KeyCode::Char('2')), Some(Action::Show(View::Explain)));
        assert_eq!(k(KeyCode::Down), Some(Action::SelectNext));
        assert_eq!(k(KeyCode::Char('?')), Some(Action::ToggleHelp));
        assert_eq!(k(KeyCode::Char('x')), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(key_action(ctrl_c), Some(Action::Quit));
    }

    #[test]
    fn loop_applies_events_and_quits() {
        let (tx, rx) = mpsc::channel();
        tx.send(Event::Feed(FeedEvent::Connected)).unwrap();
        tx.send(Event::Feed(FeedEvent::Message(demo::hello())))
            .unwrap();
        for seq in 0..5 {
            tx.send(Event::Feed(FeedEvent::Message(demo::reading_message(seq))))
                .unwrap();
        }
        tx.send(Event::Action(Action::Show(View::Health))).unwrap();
        tx.send(Event::Action(Action::Quit)).unwrap();
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let mut app = App::new("tcp test", Instant::now());
        run_app(&mut terminal, &mut app, &rx, &Theme::new(ColorMode::None)).unwrap();
        assert_eq!(app.readings, 5);
        assert_eq!(app.view, View::Health);
        let screen = terminal.backend().to_string();
        assert!(screen.contains("edge-1a2b3c4d"), "{screen}");
    }
}
