//! Fan-out: one thread and one bounded queue per sink. Publishing only
//! enqueues (dropping the sink's oldest reading when its queue is full, counted
//! in health), so inference never waits for an output. Retries, backoff and
//! log rate limiting live here, once, for every sink.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use earshot_protocol::Reading;

use super::queue::Queue;
use super::{Sink, SinkError};
use crate::health::Counters;

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
    queue: Arc<Queue<Arc<Reading>>>,
    dropped: AtomicU64,
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
                let q = Arc::clone(&queue);
                let h = Arc::clone(&health);
                let o = Arc::clone(&open);
                let f = Arc::clone(&failure);
                let thread = std::thread::Builder::new()
                    .name(format!("sink-{name}"))
                    .spawn(move || drive(sink, &q, &h, &o, &f))
                    .map_err(|e| tracing::error!("cannot start the {name} sink thread: {e}"))
                    .ok();
                Route {
                    name,
                    queue,
                    dropped: AtomicU64::new(0),
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

    /// Hands one reading to every sink; never waits on a sink.
    pub fn publish(&self, reading: Reading) {
        let reading = Arc::new(reading);
        for route in &self.routes {
            if route.queue.push_drop_oldest(Arc::clone(&reading)).is_some() {
                let n = route.dropped.fetch_add(1, Ordering::Relaxed) + 1;
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

/// A sink's thread: publish each queued reading, retrying with backoff while
/// running; once shutting down, a failing sink gets one attempt, then its
/// queue is dropped, so that a broken output cannot hold shutdown up.
fn drive(
    mut sink: Box<dyn Sink>,
    queue: &Queue<Arc<Reading>>,
    health: &Counters,
    open: &AtomicUsize,
    failure: &Mutex<Option<String>>,
) {
    let name = sink.name();
    let mut failures: u64 = 0;
    'readings: while let Some(reading) = queue.pop() {
        let mut delay = BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match sink.publish(&reading) {
                Ok(()) => continue 'readings,
                Err(SinkError::Closed(why)) => {
                    tracing::info!("sink {name} closed ({why}); no more readings go there");
                    queue.abort();
                    open.fetch_sub(1, Ordering::Relaxed);
                    break 'readings;
                }
                Err(SinkError::Failed(why)) => {
                    Counters::bump(&health.sink_errors);
                    failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(why);
                    queue.abort();
                    open.fetch_sub(1, Ordering::Relaxed);
                    break 'readings;
                }
                Err(e) if queue.is_closed() => {
                    Counters::bump(&health.sink_errors);
                    tracing::warn!(
                        "sink {name}: {e} while shutting down; its last {} readings are dropped",
                        queue.len() + 1
                    );
                    queue.abort();
                    break 'readings;
                }
                Err(e) => {
                    failures += 1;
                    Counters::bump(&health.sink_errors);
                    if failures == 1 || failures % LOG_EVERY == 0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use earshot_protocol::{Health, InputState};
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
        fn publish(&mut self, r: &Reading) -> Result<(), SinkError> {
            std::thread::sleep(Duration::from_millis(2));
            self.0.lock().unwrap().push(r.seq);
            Ok(())
        }
    }

    struct Failing(Arc<AtomicU64>);
    impl Sink for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn publish(&mut self, _: &Reading) -> Result<(), SinkError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(SinkError::Io(std::io::Error::other("down")))
        }
    }

    struct Broken(Arc<AtomicU64>);
    impl Sink for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn publish(&mut self, _: &Reading) -> Result<(), SinkError> {
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
}
