//! Fan-out: one thread and one bounded queue per sink. Publishing only
//! enqueues (dropping the sink's oldest reading when its queue is full, counted
//! in health), so inference never waits for an output. Retries, backoff and
//! log rate limiting live here, once, for every sink.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use earshot_protocol::{OutputState, Reading};

use super::queue::Queue;
use super::{Published, Sink, SinkError};
use crate::health::{Counters, OutputCounters};

/// Readings a sink may fall behind before its oldest is dropped.
pub const SINK_QUEUE: usize = 64;
/// Attempts per reading before a failing sink skips it.
const ATTEMPTS: u32 = 3;
/// First retry delay; doubles per attempt.
const BACKOFF: Duration = Duration::from_millis(100);
/// Log the first drop or failure, then every this many.
const LOG_EVERY: u64 = 100;

struct Route {
    name: &'static str,
    queue: Arc<Queue<Arc<Published>>>,
    counters: Arc<OutputCounters>,
    thread: Option<JoinHandle<()>>,
}

/// Distributes readings to sinks without ever blocking the caller on a sink.
pub struct FanOut {
    routes: Vec<Route>,
    health: Arc<Counters>,
    /// Sinks still accepting readings (a sink that reports `Closed` leaves).
    open: Arc<AtomicUsize>,
    /// The first sink failure ([`SinkError::Failed`]), for the daemon to stop on.
    failure: Arc<Mutex<Option<String>>>,
}

impl FanOut {
    pub fn new(sinks: Vec<Box<dyn Sink>>, health: Arc<Counters>) -> Self {
        let open = Arc::new(AtomicUsize::new(sinks.len()));
        let failure = Arc::new(Mutex::new(None));
        let routes = sinks
            .into_iter()
            .map(|sink| {
                let name = sink.name();
                let queue = Arc::new(Queue::new(SINK_QUEUE));
                let counters = health.register_output(name);
                let route = Driver {
                    queue: Arc::clone(&queue),
                    health: Arc::clone(&health),
                    counters: Arc::clone(&counters),
                    open: Arc::clone(&open),
                    failure: Arc::clone(&failure),
                };
                let thread = std::thread::Builder::new()
                    .name(format!("sink-{name}"))
                    .spawn(move || route.drive(sink))
                    .map_err(|e| tracing::error!("cannot start the {name} sink thread: {e}"))
                    .ok();
                Route {
                    name,
                    queue,
                    counters,
                    thread,
                }
            })
            .collect();
        Self {
            routes,
            health,
            open,
            failure,
        }
    }

    /// Why a sink failed for good, if one did: the daemon stops rather than
    /// lose readings silently.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True once every sink has closed for good (e.g. stdout was the only
    /// output and the reader went away): nothing is listening any more.
    pub fn all_closed(&self) -> bool {
        self.open.load(Ordering::Relaxed) == 0
    }

    /// Hands one reading to every sink, encoded once; never waits on a sink.
    pub fn publish(&self, reading: Reading) {
        let reading = Arc::new(Published::new(reading));
        for route in &self.routes {
            if route.queue.push_drop_oldest(Arc::clone(&reading)).is_some() {
                let n = route.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                Counters::bump(&self.health.dropped_readings);
                if n == 1 || n % LOG_EVERY == 0 {
                    tracing::warn!(
                        "sink {} is too slow: {n} readings dropped so far",
                        route.name
                    );
                }
            }
        }
    }

    /// Lets every sink drain its queue, then closes it; returns the failure
    /// of a broken sink, if any (see [`failure`](Self::failure)).
    pub fn close(mut self) -> Option<String> {
        for route in &self.routes {
            route.queue.close();
        }
        for route in &mut self.routes {
            if let Some(t) = route.thread.take() {
                if t.join().is_err() {
                    tracing::error!("sink {} panicked", route.name);
                }
            }
        }
        self.failure()
    }
}

/// What a sink's thread needs: its queue and where to report.
struct Driver {
    queue: Arc<Queue<Arc<Published>>>,
    health: Arc<Counters>,
    counters: Arc<OutputCounters>,
    open: Arc<AtomicUsize>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Driver {
    /// Publishes each queued reading, retrying with backoff while running;
    /// once shutting down, a failing sink gets one attempt, then its queue is
    /// dropped, so that a broken output cannot hold shutdown up. An output
    /// that is down skips the reading: it is not replayed late as if new.
    fn drive(self, mut sink: Box<dyn Sink>) {
        let name = sink.name();
        let queue = &self.queue;
        let mut failures: u64 = 0;
        'readings: while let Some(reading) = queue.pop() {
            let mut delay = BACKOFF;
            for attempt in 1..=ATTEMPTS {
                let error = match sink.publish(&reading) {
                    Ok(()) => {
                        self.counters.set_state(OutputState::Ok);
                        continue 'readings;
                    }
                    Err(e) => e,
                };
                if !matches!(error, SinkError::Closed(_)) {
                    self.count_error();
                }
                match error {
                    SinkError::Closed(why) => {
                        tracing::info!("sink {name} closed ({why}); no more readings go there");
                        self.leave(OutputState::Closed);
                        break 'readings;
                    }
                    SinkError::Failed(why) => {
                        self.failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(why);
                        self.leave(OutputState::Failed);
                        break 'readings;
                    }
                    SinkError::Down(why) => {
                        failures += 1;
                        if self.counters.state() != OutputState::Down
                            || failures.is_multiple_of(LOG_EVERY)
                        {
                            tracing::warn!("sink {name} is down ({why}); readings are skipped until it is back");
                        }
                        self.counters.set_state(OutputState::Down);
                        continue 'readings;
                    }
                    e if queue.is_closed() => {
                        tracing::warn!(
                            "sink {name}: {e} while shutting down; its last {} readings are dropped",
                            queue.len() + 1
                        );
                        queue.abort();
                        break 'readings;
                    }
                    e => {
                        failures += 1;
                        self.counters.set_state(OutputState::Retrying);
                        if failures == 1 || failures.is_multiple_of(LOG_EVERY) {
                            tracing::warn!(
                                "sink {name}: {e} (attempt {attempt}, {failures} failures so far)"
                            );
                        }
                        if attempt < ATTEMPTS {
                            std::thread::sleep(delay);
                            delay *= 2;
                        }
                    }
                }
            }
        }
        if let Err(e) = sink.close() {
            tracing::warn!("closing sink {name}: {e}");
        }
    }

    fn count_error(&self) {
        Counters::bump(&self.health.sink_errors);
        Counters::bump(&self.counters.errors);
    }

    /// The sink takes no more readings.
    fn leave(&self, state: OutputState) {
        self.counters.set_state(state);
        self.queue.abort();
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use earshot_protocol::{Health, InputState};
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;

    fn reading(seq: u64) -> Reading {
        Reading {
            seq,
            time_ms: 0,
            stream_ms: 0,
            model_id: "t".into(),
            state: InputState::Silence,
            level_dbfs: -120.0,
            spectrum: vec![],
            analysis: None,
            latency_ms: 0.0,
            health: Health::default(),
        }
    }

    struct Slow(Arc<Mutex<Vec<u64>>>);
    impl Sink for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn publish(&mut self, r: &Published) -> Result<(), SinkError> {
            std::thread::sleep(Duration::from_millis(2));
            self.0.lock().unwrap().push(r.reading.seq);
            Ok(())
        }
    }

    struct Failing(Arc<AtomicU64>);
    impl Sink for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn publish(&mut self, _: &Published) -> Result<(), SinkError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(SinkError::Io(std::io::Error::other("down")))
        }
    }

    struct Broken(Arc<AtomicU64>);
    impl Sink for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn publish(&mut self, _: &Published) -> Result<(), SinkError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(SinkError::Failed("disk full".into()))
        }
    }

    #[test]
    fn a_broken_sink_is_reported_once_and_fed_no_more() {
        let calls = Arc::new(AtomicU64::new(0));
        let health = Arc::new(Counters::default());
        let fan = FanOut::new(
            vec![Box::new(Broken(Arc::clone(&calls)))],
            Arc::clone(&health),
        );
        assert_eq!(fan.failure(), None);
        fan.publish(reading(0));
        let t0 = std::time::Instant::now();
        while fan.failure().is_none() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(fan.failure().as_deref(), Some("disk full"));
        assert!(fan.all_closed());
        for i in 1..100 {
            fan.publish(reading(i));
        }
        fan.close();
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "no retries of a broken sink"
        );
    }

    #[test]
    fn a_failing_sink_does_not_slow_shutdown() {
        let calls = Arc::new(AtomicU64::new(0));
        let fan = FanOut::new(
            vec![Box::new(Failing(Arc::clone(&calls)))],
            Arc::new(Counters::default()),
        );
        for i in 0..SINK_QUEUE as u64 {
            fan.publish(reading(i));
        }
        let t0 = std::time::Instant::now();
        fan.close();
        // before: 3 attempts with 300 ms of backoff for each of 64 readings (19 s)
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "close took {:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn slow_sink_drops_oldest_and_never_blocks_the_publisher() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let health = Arc::new(Counters::default());
        let fan = FanOut::new(vec![Box::new(Slow(Arc::clone(&seen)))], Arc::clone(&health));
        let start = std::time::Instant::now();
        for i in 0..1000 {
            fan.publish(reading(i));
        }
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "publish waited on the sink"
        );
        fan.close();
        let seen = seen.lock().unwrap();
        let dropped = health.dropped_readings.load(Ordering::Relaxed);
        assert!(dropped > 0);
        assert_eq!(seen.len() as u64 + dropped, 1000);
        assert_eq!(
            *seen.last().unwrap(),
            999,
            "the newest reading is delivered"
        );
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order");
    }

    #[test]
    fn failing_sink_is_retried_and_counted_without_stopping_others() {
        let calls = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let health = Arc::new(Counters::default());
        let fan = FanOut::new(
            vec![
                Box::new(Failing(Arc::clone(&calls))),
                Box::new(Slow(Arc::clone(&seen))),
            ],
            Arc::clone(&health),
        );
        fan.publish(reading(0));
        fan.publish(reading(1));
        // retries happen while running (at shutdown a failing sink gets one try)
        let t0 = std::time::Instant::now();
        while calls.load(Ordering::Relaxed) < 2 * u64::from(ATTEMPTS)
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        fan.close();
        assert_eq!(calls.load(Ordering::Relaxed), 2 * u64::from(ATTEMPTS));
        assert_eq!(health.sink_errors.load(Ordering::Relaxed), 6);
        assert_eq!(*seen.lock().unwrap(), vec![0, 1]);
    }

    struct Down(Arc<AtomicU64>);
    impl Sink for Down {
        fn name(&self) -> &'static str {
            "down"
        }
        fn publish(&mut self, _: &Published) -> Result<(), SinkError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(SinkError::Down("broker unreachable".into()))
        }
    }

    #[test]
    fn output_states_reach_health_and_a_down_output_skips_without_retrying() {
        let (down, failing, broken) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let health = Arc::new(Counters::default());
        let fan = FanOut::new(
            vec![
                Box::new(Down(Arc::clone(&down))),
                Box::new(Failing(Arc::clone(&failing))),
                Box::new(Broken(Arc::clone(&broken))),
                Box::new(Slow(Arc::clone(&seen))),
            ],
            Arc::clone(&health),
        );
        let states = || {
            health
                .snapshot()
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.state))
                .collect::<Vec<_>>()
        };
        assert!(states().iter().all(|(_, s)| *s == OutputState::Starting));
        for i in 0..3 {
            fan.publish(reading(i));
        }
        let t0 = std::time::Instant::now();
        while (seen.lock().unwrap().len() < 3 || failing.load(Ordering::Relaxed) < 1)
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let now = states();
        assert_eq!(now[0], ("down".into(), OutputState::Down));
        assert_eq!(now[1], ("failing".into(), OutputState::Retrying));
        assert_eq!(now[2], ("broken".into(), OutputState::Failed));
        assert_eq!(now[3], ("slow".into(), OutputState::Ok));
        fan.close();
        assert_eq!(
            down.load(Ordering::Relaxed),
            3,
            "one try per reading, no retries"
        );
        let h = health.snapshot();
        assert_eq!(h.outputs[0].errors, 3);
        assert_eq!(h.outputs[2].errors, 1);
    }
}
