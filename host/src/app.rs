//! Console state: the latest reading, history ring buffers, the selected
//! emotion and view, and the connection to the daemon. No terminal code: the
//! event loop feeds [`Action`]s and [`FeedEvent`]s in, `ui` draws from `&App`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use earshot_protocol::history::MAX_HISTORY_BUCKETS;
use earshot_protocol::{
    Analysis, Emotions, Hello, InputState, Message, MidLevel, Reading, Request,
};

use crate::text::{self, MAX_MESSAGE, MAX_NAME};

/// Readings kept per series: 15 minutes at the default 1 s hop.
pub const HISTORY_LEN: usize = 900;
/// Arrivals used to measure the hop rate.
const ARRIVALS_KEPT: usize = 16;
/// Warnings kept for the health view and for printing at exit.
const WARNINGS_KEPT: usize = 20;
/// Values count as stale after this many hop intervals without a reading.
const STALE_HOPS: u32 = 3;
/// Hop assumed before the daemon's hello says otherwise.
const DEFAULT_HOP: Duration = Duration::from_secs(1);
/// Spectrum bands kept per reading (the daemon sends 16): with [`HISTORY_LEN`]
/// readings kept, the wire cannot grow the console's memory beyond this.
pub const MAX_BANDS: usize = 32;
/// Outputs shown in the health view; a daemon has a handful.
pub const MAX_OUTPUTS: usize = 16;
/// What the History view asks the daemon for: the last 12 hours in quarters.
pub const LOOKBACK_SPAN: Duration = Duration::from_secs(12 * 3600);
pub const LOOKBACK_BUCKET: Duration = Duration::from_secs(15 * 60);
/// While the History view is shown, it is asked for again this often.
const LOOKBACK_REFRESH: Duration = Duration::from_secs(60);

/// What a feed (the network stream or a replayed file) reports.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// Trying to connect; `attempt` counts from 1 since the last good connection.
    Connecting {
        attempt: u32,
    },
    /// Connected (or the recording opened); messages follow.
    Connected,
    Message(Message),
    /// The connection failed or closed.
    Lost {
        reason: String,
    },
    /// The stream speaks a protocol version this console does not read.
    VersionMismatch(String),
    /// A line that could not be decoded and was skipped; says where.
    BadLine(String),
    /// The recording has been played to its end.
    Ended,
}

/// Sends `event` as whatever the receiver collects; false once it hung up.
pub(crate) fn send<E: From<FeedEvent>>(tx: &std::sync::mpsc::Sender<E>, event: FeedEvent) -> bool {
    tx.send(E::from(event)).is_ok()
}

/// State of the link to the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting {
        attempt: u32,
    },
    Live,
    Lost {
        since: Instant,
        reason: String,
    },
    VersionMismatch(String),
    /// Replay finished; the last values stay on screen.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Explain,
    Health,
    History,
}

impl View {
    pub const ALL: [View; 4] = [View::Overview, View::Explain, View::Health, View::History];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Explain => "Explain",
            View::Health => "Health",
            View::History => "History",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Running,
    Quit,
}

/// What a key asks for; the event loop maps keys to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Close the help overlay if open, else quit.
    Back,
    Show(View),
    NextView,
    PrevView,
    SelectNext,
    SelectPrev,
    ToggleHelp,
}

/// Direction of a series over the last readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    Rising,
    Steady,
    Falling,
    Unknown,
}

/// A fixed-size history; `None` marks a reading without a value (silence, warmup).
#[derive(Debug, Clone, Default)]
pub struct History {
    values: VecDeque<Option<f32>>,
}

impl History {
    pub fn push(&mut self, value: Option<f32>) {
        if self.values.len() == HISTORY_LEN {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Option<f32>> + ExactSizeIterator + '_ {
        self.values.iter().copied()
    }

    /// Mean of the last 5 values against the 5 before them.
    pub fn trend(&self) -> Trend {
        const SPAN: usize = 5;
        const THRESHOLD: f32 = 0.02;
        let recent: Vec<f32> = self
            .values
            .iter()
            .rev()
            .take(2 * SPAN)
            .flatten()
            .copied()
            .collect();
        if recent.len() < 4 {
            return Trend::Unknown;
        }
        let half = recent.len() / 2;
        let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len() as f32;
        let delta = mean(&recent[..half]) - mean(&recent[half..]);
        if delta > THRESHOLD {
            Trend::Rising
        } else if delta < -THRESHOLD {
            Trend::Falling
        } else {
            Trend::Steady
        }
    }
}

/// The daemon's history, as the History view shows it: asked for over the
/// stream when the view opens and every minute while it is shown.
#[derive(Debug, Default)]
pub struct Lookback {
    /// Where requests go (the network thread); none for a replay.
    pub requests: Option<std::sync::mpsc::Sender<Request>>,
    pub asked: Option<Instant>,
    /// The last answer and when it came.
    pub answer: Option<(Instant, earshot_protocol::History)>,
}

impl Lookback {
    fn ask(&mut self, now: Instant) {
        let Some(tx) = &self.requests else {
            return;
        };
        let request = Request::History {
            span_ms: LOOKBACK_SPAN.as_millis() as u64,
            bucket_ms: LOOKBACK_BUCKET.as_millis() as u64,
        };
        if tx.send(request).is_ok() {
            self.asked = Some(now);
        }
    }

    /// Asks unless an answer or a question is younger than `max_age`.
    fn refresh(&mut self, now: Instant, max_age: Duration) {
        let fresh =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < max_age);
        if !fresh(self.asked) && !fresh(self.answer.as_ref().map(|(t, _)| *t)) {
            self.ask(now);
        }
    }

    /// Waiting for an answer to the last question.
    pub fn pending(&self) -> bool {
        match (self.asked, &self.answer) {
            (Some(asked), Some((got, _))) => asked > *got,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// The whole console state.
#[derive(Debug)]
pub struct App {
    /// Where readings come from, for people: `tcp 127.0.0.1:7878`, `replay x.ndjson`.
    pub source: String,
    /// Replay speed factor (1 for live); stale detection scales with it.
    pub speed: f64,
    pub connection: Connection,
    pub mode: Mode,
    pub view: View,
    pub selected: usize,
    pub show_help: bool,
    /// The clock the display uses; set by every event and tick.
    pub now: Instant,
    pub started: Instant,
    pub hello: Option<Hello>,
    pub last: Option<Reading>,
    pub last_at: Option<Instant>,
    /// The latest reading that had an analysis (music), and its seq.
    pub last_analysis: Option<(u64, Analysis)>,
    pub emotions: [History; 8],
    pub mid_level: [History; 7],
    pub latency_ms: History,
    pub level_dbfs: History,
    pub spectra: VecDeque<Vec<f32>>,
    arrivals: VecDeque<Instant>,
    pub connected_since: Option<Instant>,
    /// Successful connections so far.
    pub connects: u32,
    /// The current connection attempt, counted from 1 since the last success.
    pub attempt: u32,
    pub readings: u64,
    /// Readings the daemon numbered but this console never saw.
    pub missed: u64,
    pub bad_lines: u64,
    pub warnings: VecDeque<String>,
    pub lookback: Lookback,
}

impl App {
    pub fn new(source: impl Into<String>, now: Instant) -> Self {
        App {
            source: text::clean(&source.into(), MAX_MESSAGE),
            speed: 1.0,
            connection: Connection::Connecting { attempt: 1 },
            mode: Mode::Running,
            view: View::Overview,
            selected: 2, // tension: the emotion venue staff ask about most
            show_help: false,
            now,
            started: now,
            hello: None,
            last: None,
            last_at: None,
            last_analysis: None,
            emotions: Default::default(),
            mid_level: Default::default(),
            latency_ms: History::default(),
            level_dbfs: History::default(),
            spectra: VecDeque::new(),
            arrivals: VecDeque::new(),
            connected_since: None,
            connects: 0,
            attempt: 1,
            readings: 0,
            missed: 0,
            bad_lines: 0,
            warnings: VecDeque::new(),
            lookback: Lookback::default(),
        }
    }

    pub fn on_action(&mut self, action: Action) {
        let n = View::ALL.len();
        match action {
            Action::Quit => self.mode = Mode::Quit,
            Action::Back if self.show_help => self.show_help = false,
            Action::Back => self.mode = Mode::Quit,
            Action::Show(view) => self.show(view),
            Action::NextView => self.show(View::ALL[(self.view.index() + 1) % n]),
            Action::PrevView => self.show(View::ALL[(self.view.index() + n - 1) % n]),
            Action::SelectNext => self.selected = (self.selected + 1) % Emotions::<f32>::LEN,
            Action::SelectPrev => {
                self.selected = (self.selected + Emotions::<f32>::LEN - 1) % Emotions::<f32>::LEN
            }
            Action::ToggleHelp => self.show_help = !self.show_help,
        }
    }

    fn show(&mut self, view: View) {
        self.view = view;
        if view == View::History {
            // An answer of a few seconds ago is still the news.
            self.lookback.refresh(self.now, Duration::from_secs(10));
        }
    }

    pub fn on_feed(&mut self, event: FeedEvent, now: Instant) {
        self.now = now;
        match event {
            FeedEvent::Connecting { attempt } => {
                self.attempt = attempt;
                // Keep showing why the last attempt failed until one succeeds.
                if !matches!(
                    self.connection,
                    Connection::Lost { .. } | Connection::VersionMismatch(_)
                ) {
                    self.connection = Connection::Connecting { attempt };
                }
            }
            FeedEvent::Connected => {
                self.connection = Connection::Live;
                self.connected_since = Some(now);
                self.connects += 1;
                self.arrivals.clear();
            }
            FeedEvent::Message(Message::Hello(mut hello)) => {
                self.connection = Connection::Live;
                for field in [&mut hello.daemon, &mut hello.model_id, &mut hello.source] {
                    text::clean_in_place(field, MAX_NAME);
                }
                self.hello = Some(hello);
                if self.view == View::History {
                    // a new connection: the last question went to the old one
                    self.lookback.ask(now);
                }
            }
            FeedEvent::Message(Message::History(mut history)) => {
                history.buckets.truncate(MAX_HISTORY_BUCKETS);
                history.buckets.shrink_to_fit();
                if let Some(why) = history.unavailable.as_mut() {
                    text::clean_in_place(why, MAX_MESSAGE);
                }
                self.lookback.answer = Some((now, history));
            }
            FeedEvent::Message(Message::Reading(mut reading)) => {
                self.connection = Connection::Live;
                text::clean_in_place(&mut reading.model_id, MAX_NAME);
                reading.spectrum.truncate(MAX_BANDS);
                reading.spectrum.shrink_to_fit();
                reading.health.outputs.truncate(MAX_OUTPUTS);
                reading.health.outputs.shrink_to_fit();
                for o in &mut reading.health.outputs {
                    text::clean_in_place(&mut o.name, MAX_NAME);
                }
                self.on_reading(*reading, now);
            }
            FeedEvent::Lost { mut reason } => {
                text::clean_in_place(&mut reason, MAX_MESSAGE);
                let since = match &self.connection {
                    Connection::Lost { since, .. } => *since,
                    _ => now,
                };
                self.connection = Connection::Lost { since, reason };
                self.connected_since = None;
            }
            FeedEvent::VersionMismatch(msg) => {
                self.connection = Connection::VersionMismatch(text::clean(&msg, MAX_MESSAGE));
                self.connected_since = None;
            }
            FeedEvent::BadLine(msg) => {
                self.bad_lines += 1;
                self.warn(msg);
            }
            FeedEvent::Ended => self.connection = Connection::Ended,
        }
    }

    fn warn(&mut self, msg: String) {
        if self.warnings.len() == WARNINGS_KEPT {
            self.warnings.pop_front();
        }
        // decode errors quote the offending line's field names and values
        self.warnings.push_back(text::clean(&msg, MAX_MESSAGE));
    }

    fn on_reading(&mut self, reading: Reading, now: Instant) {
        if let Some(prev) = &self.last {
            // A smaller seq means the daemon restarted; only forward gaps are misses.
            if let Some(expected) = prev.seq.checked_add(1) {
                if reading.seq > expected {
                    self.missed = self.missed.saturating_add(reading.seq - expected);
                }
            }
        }
        let analysis = reading.analysis.as_ref();
        let emotions = analysis.map(|a| a.emotions.to_array());
        for (i, h) in self.emotions.iter_mut().enumerate() {
            h.push(emotions.map(|e| e[i]));
        }
        let mid = analysis.map(|a| a.mid_level.to_array());
        for (i, h) in self.mid_level.iter_mut().enumerate() {
            h.push(mid.map(|m| m[i]));
        }
        self.latency_ms.push(analysis.map(|_| reading.latency_ms));
        self.level_dbfs.push(Some(reading.level_dbfs));
        if self.spectra.len() == HISTORY_LEN {
            self.spectra.pop_front();
        }
        self.spectra.push_back(reading.spectrum.clone());
        if self.arrivals.len() == ARRIVALS_KEPT {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(now);
        if let Some(a) = analysis {
            self.last_analysis = Some((reading.seq, a.clone()));
        }
        self.readings = self.readings.saturating_add(1);
        self.last = Some(reading);
        self.last_at = Some(now);
    }

    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        if self.view == View::History && self.connection == Connection::Live {
            self.lookback.refresh(now, LOOKBACK_REFRESH);
        }
    }

    /// The hop the daemon promised, or 1 s before its hello; scaled by replay speed.
    pub fn expected_hop(&self) -> Duration {
        let hop = self
            .hello
            .as_ref()
            .filter(|h| h.hop_ms > 0)
            .map(|h| Duration::from_millis(u64::from(h.hop_ms)))
            .unwrap_or(DEFAULT_HOP);
        if self.speed > 0.0 && self.speed.is_finite() {
            hop.div_f64(self.speed)
        } else {
            hop
        }
    }

    /// Mean time between the last readings, as they arrived here.
    pub fn measured_hop(&self) -> Option<Duration> {
        let first = self.arrivals.front()?;
        let last = self.arrivals.back()?;
        let n = self.arrivals.len().checked_sub(1).filter(|n| *n > 0)?;
        Some(last.duration_since(*first) / n as u32)
    }

    /// Time since the last reading arrived.
    pub fn age(&self) -> Option<Duration> {
        self.last_at.map(|t| self.now.saturating_duration_since(t))
    }

    /// Whether shown values are old: no live link, or no reading for 3 hops.
    pub fn is_stale(&self) -> bool {
        match self.connection {
            Connection::Live => self
                .age()
                .is_some_and(|age| age > self.expected_hop() * STALE_HOPS),
            _ => true,
        }
    }

    /// When the display next changes without any event: the moment values go
    /// stale, or in a second while counting how long something has lasted.
    pub fn next_wakeup(&self) -> Duration {
        const COUNTER_STEP: Duration = Duration::from_secs(1);
        match (&self.connection, self.age()) {
            (Connection::Live, Some(age)) if !self.is_stale() => {
                (self.expected_hop() * STALE_HOPS).saturating_sub(age) + Duration::from_millis(10)
            }
            (Connection::Ended, _) => Duration::from_secs(3600),
            _ => COUNTER_STEP,
        }
    }

    pub fn selected_name(&self) -> &'static str {
        Emotions::<f32>::NAMES[self.selected.min(Emotions::<f32>::LEN - 1)]
    }

    /// Current input state, if any reading has arrived.
    pub fn state(&self) -> Option<InputState> {
        self.last.as_ref().map(|r| r.state)
    }

    /// The model id: from the last reading, else from the hello.
    pub fn model_id(&self) -> Option<&str> {
        self.last
            .as_ref()
            .map(|r| r.model_id.as_str())
            .or(self.hello.as_ref().map(|h| h.model_id.as_str()))
    }

    pub fn mid_level_means(&self) -> Option<MidLevel<f32>> {
        self.hello.as_ref().map(|h| h.mid_level_means)
    }

    pub fn should_quit(&self) -> bool {
        self.mode == Mode::Quit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;

    fn live_app(readings: u64) -> (App, Instant) {
        let t0 = Instant::now();
        let mut app = App::new("tcp test", t0);
        app.on_feed(FeedEvent::Connected, t0);
        app.on_feed(FeedEvent::Message(demo::hello()), t0);
        let mut t = t0;
        for seq in 0..readings {
            t = t0 + Duration::from_secs(seq);
            app.on_feed(FeedEvent::Message(demo::reading_message(seq)), t);
        }
        (app, t)
    }

    #[test]
    fn readings_fill_history_and_measure_hop() {
        let (app, _) = live_app(10);
        assert_eq!(app.emotions[0].len(), 10);
        assert_eq!(app.readings, 10);
        assert_eq!(app.measured_hop(), Some(Duration::from_secs(1)));
        assert_eq!(app.missed, 0);
        assert!(!app.is_stale());
    }

    #[test]
    fn stale_after_three_hops_and_when_lost() {
        let (mut app, t) = live_app(3);
        app.tick(t + Duration::from_millis(2900));
        assert!(!app.is_stale());
        app.tick(t + Duration::from_millis(3100));
        assert!(app.is_stale());
        let (mut app, t) = live_app(3);
        app.on_feed(
            FeedEvent::Lost {
                reason: "eof".into(),
            },
            t,
        );
        assert!(app.is_stale());
        assert!(app.last.is_some(), "last values stay shown");
    }

    #[test]
    fn seq_gaps_count_as_missed() {
        let (mut app, t) = live_app(3);
        app.on_feed(FeedEvent::Message(demo::reading_message(7)), t);
        assert_eq!(app.missed, 4);
    }

    #[test]
    fn seq_at_the_end_of_u64_does_not_overflow() {
        let (mut app, t) = live_app(1);
        let mut r = demo::reading(0);
        r.seq = u64::MAX - 1;
        app.on_feed(FeedEvent::Message(Message::Reading(Box::new(r.clone()))), t);
        r.seq = u64::MAX;
        app.on_feed(FeedEvent::Message(Message::Reading(Box::new(r.clone()))), t);
        app.on_feed(FeedEvent::Message(Message::Reading(Box::new(r))), t);
        assert_eq!(app.missed, u64::MAX - 2);
        assert_eq!(app.readings, 4);
    }

    /// A hostile stream: escape sequences in every string, a huge spectrum.
    fn hostile_hello_and_reading() -> (Hello, Reading) {
        let title = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
        let Message::Hello(mut hello) = demo::hello() else {
            unreachable!("demo::hello is a hello")
        };
        hello.model_id = format!("m{title}{}", "x".repeat(1 << 20));
        hello.source = format!("s{title}");
        hello.daemon = format!("d{title}");
        let mut reading = demo::reading(0);
        reading.model_id = format!("m{title}");
        reading.spectrum = vec![0.5; 100_000];
        reading.health.outputs = vec![
            earshot_protocol::OutputHealth {
                name: format!("\u{1b}]0;owned\u{7}{}", "o".repeat(10_000)),
                state: earshot_protocol::OutputState::Ok,
                errors: 0,
                dropped: 0,
            };
            10_000
        ];
        (hello, reading)
    }

    #[test]
    fn wire_text_is_escaped_and_bounded() {
        let (hello, reading) = hostile_hello_and_reading();
        let t = Instant::now();
        let mut app = App::new("tcp \u{1b}[2J", t);
        assert_eq!(app.source, "tcp \\u{1b}[2J");
        app.on_feed(FeedEvent::Message(Message::Hello(hello)), t);
        for seq in 0..HISTORY_LEN as u64 + 5 {
            let mut r = reading.clone();
            r.seq = seq;
            app.on_feed(FeedEvent::Message(Message::Reading(Box::new(r))), t);
        }
        app.on_feed(
            FeedEvent::BadLine(format!(
                "x: unknown field `\u{1b}]0;t\u{7}{}`",
                "y".repeat(1 << 20)
            )),
            t,
        );
        app.on_feed(
            FeedEvent::Lost {
                reason: "\u{1b}[31mgone".into(),
            },
            t,
        );
        let h = app.hello.as_ref().unwrap();
        let last = app.last.as_ref().unwrap();
        assert_eq!(last.health.outputs.len(), MAX_OUTPUTS);
        let texts = [
            &h.model_id,
            &h.source,
            &h.daemon,
            &last.model_id,
            &last.health.outputs[0].name,
            &app.warnings[0],
        ];
        for t in texts {
            assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t:?}");
            assert!(t.chars().count() <= MAX_MESSAGE + 1, "{} chars", t.len());
        }
        assert!(
            matches!(&app.connection, Connection::Lost { reason, .. } if reason == "\\u{1b}[31mgone")
        );
        assert_eq!(app.spectra.len(), HISTORY_LEN);
        assert!(app.spectra.iter().all(|s| s.len() == MAX_BANDS));
        let kept: usize = app.spectra.iter().map(|s| s.capacity()).sum();
        assert!(kept <= HISTORY_LEN * MAX_BANDS, "{kept} floats kept");
    }

    #[test]
    fn history_is_bounded() {
        let mut h = History::default();
        for i in 0..HISTORY_LEN + 10 {
            h.push(Some(i as f32));
        }
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!(h.iter().next(), Some(Some(10.0)));
    }

    #[test]
    fn trends() {
        let mut h = History::default();
        assert_eq!(h.trend(), Trend::Unknown);
        for i in 0..10 {
            h.push(Some(i as f32 * 0.05));
        }
        assert_eq!(h.trend(), Trend::Rising);
        for _ in 0..10 {
            h.push(Some(0.5));
        }
        assert_eq!(h.trend(), Trend::Steady);
        for i in 0..10 {
            h.push(Some(0.5 - i as f32 * 0.05));
        }
        assert_eq!(h.trend(), Trend::Falling);
    }

    #[test]
    fn the_history_view_asks_the_daemon_and_keeps_the_answer() {
        let (mut app, t) = live_app(3);
        let (tx, asked) = std::sync::mpsc::channel();
        app.lookback.requests = Some(tx);
        app.on_action(Action::Show(View::Overview));
        assert!(asked.try_recv().is_err(), "only the History view asks");
        app.on_action(Action::Show(View::History));
        let Ok(Request::History { span_ms, bucket_ms }) = asked.try_recv() else {
            panic!("opening the view asks for the history")
        };
        assert_eq!((span_ms, bucket_ms), (12 * 3_600_000, 900_000));
        assert!(app.lookback.pending());
        let answer = earshot_protocol::History {
            span_ms,
            bucket_ms,
            buckets: vec![
                earshot_protocol::HistoryBucket {
                    start_ms: 0,
                    readings: 1,
                    music_share: 0.0,
                    means: None,
                };
                MAX_HISTORY_BUCKETS + 5
            ],
            unavailable: Some("no \u{1b}[2Jhistory".into()),
        };
        app.on_feed(FeedEvent::Message(Message::History(answer)), t);
        assert!(!app.lookback.pending());
        let (_, got) = app.lookback.answer.as_ref().unwrap();
        assert_eq!(got.buckets.len(), MAX_HISTORY_BUCKETS, "bounded");
        assert!(!got.unavailable.as_ref().unwrap().contains('\u{1b}'));
        // shown again soon after: the answer is still fresh; a minute later it is asked again
        app.on_action(Action::Show(View::Health));
        app.on_action(Action::Show(View::History));
        assert!(asked.try_recv().is_err());
        app.tick(t + Duration::from_secs(61));
        assert!(asked.try_recv().is_ok(), "refreshed while shown");
        // a new connection's hello asks again
        app.on_feed(
            FeedEvent::Message(demo::hello()),
            t + Duration::from_secs(62),
        );
        assert!(asked.try_recv().is_ok());
    }

    #[test]
    fn keys_change_view_and_selection() {
        let mut app = App::new("x", Instant::now());
        app.on_action(Action::PrevView);
        assert_eq!(app.view, View::History);
        app.on_action(Action::NextView);
        assert_eq!(app.view, View::Overview);
        app.on_action(Action::Show(View::Explain));
        assert_eq!(app.view, View::Explain);
        app.selected = 7;
        app.on_action(Action::SelectNext);
        assert_eq!(app.selected, 0);
        app.on_action(Action::SelectPrev);
        assert_eq!(app.selected, 7);
        app.on_action(Action::ToggleHelp);
        app.on_action(Action::Back);
        assert!(!app.show_help);
        assert!(!app.should_quit());
        app.on_action(Action::Back);
        assert!(app.should_quit());
    }

    #[test]
    fn lost_keeps_first_failure_time_across_retries() {
        let t0 = Instant::now();
        let mut app = App::new("x", t0);
        app.on_feed(
            FeedEvent::Lost {
                reason: "refused".into(),
            },
            t0,
        );
        app.on_feed(
            FeedEvent::Connecting { attempt: 2 },
            t0 + Duration::from_secs(1),
        );
        app.on_feed(
            FeedEvent::Lost {
                reason: "refused".into(),
            },
            t0 + Duration::from_secs(2),
        );
        assert!(matches!(app.connection, Connection::Lost { since, .. } if since == t0));
    }
}
