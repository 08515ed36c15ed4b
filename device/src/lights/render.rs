//! The fixed-rate render thread: at every frame it takes the newest reading
//! (if one came), asks the engine for each zone's look, renders the fixtures,
//! limits every channel and hands the frame to every output. Readings are
//! offered through a one-slot mailbox, so neither side ever waits on the other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::LightsSettings;
use super::engine::{Engine, Input, ZoneLook};
use super::fixture::Rig;
use super::limiter::{Limiter, WINDOW_S};
use super::output::Link;

/// Frames repeated at the end, so that a lost UDP packet cannot leave a light on.
const FINAL_FRAMES: usize = 3;
/// Closing waits at most this long for the limiter to let the safe look through.
const CLOSE_LIMIT_S: f64 = WINDOW_S + 0.5;

struct Shared {
    latest: Mutex<Option<Input>>,
    closing: AtomicBool,
    frames: AtomicU64,
}

/// Running lights: a render thread and its outputs.
pub struct Lights {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Lights {
    /// Starts the render thread; its first frames fade from the safe look to the idle look.
    pub fn start(settings: &LightsSettings, links: Vec<Link>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            latest: Mutex::new(None),
            closing: AtomicBool::new(false),
            frames: AtomicU64::new(0),
        });
        let rig = Rig::new(settings.fixtures.clone());
        let period = Duration::from_secs_f64(1.0 / f64::from(settings.refresh_hz));
        let engine = Engine::new(settings.behaviour.clone(), settings.mapping.clone(), 0.0);
        let limiter = Limiter::new(rig.len(), settings.max_flashes_per_s);
        let safe = ZoneLook {
            colour: settings.behaviour.safe.colour,
            intensity: settings.behaviour.safe.intensity,
            uv: 0.0,
        };
        let max_flashes = settings.max_flashes_per_s;
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("lights".into())
            .spawn(move || {
                render(
                    &s,
                    Render {
                        rig,
                        engine,
                        limiter,
                        links,
                        period,
                        safe,
                        max_flashes,
                    },
                )
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands over the newest reading; replaces one not yet taken. Never blocks
    /// for longer than the render thread's swap of one small value.
    pub fn offer(&self, reading: &earshot_protocol::Reading) {
        let input = Input::from_reading(reading);
        *self.shared.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(input);
    }

    /// Frames sent so far.
    pub fn frames(&self) -> u64 {
        self.shared.frames.load(Ordering::Relaxed)
    }

    /// Goes to the safe look (within the flash limit), sends it a few more
    /// times, closes the outputs and stops the thread.
    pub fn close(&mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            if t.join().is_err() {
                tracing::error!("lights: the render thread panicked");
            }
        }
    }
}

impl Drop for Lights {
    /// A daemon that fails still leaves the lights in the safe look.
    fn drop(&mut self) {
        self.close();
    }
}

struct Render {
    rig: Rig,
    engine: Engine,
    limiter: Limiter,
    links: Vec<Link>,
    period: Duration,
    safe: ZoneLook,
    max_flashes: usize,
}

fn render(shared: &Shared, mut r: Render) {
    let mut safe_frame = vec![0u8; r.rig.len()];
    r.rig.render_all(&r.safe, &mut safe_frame);
    let mut links = std::mem::take(&mut r.links);
    // Whatever goes wrong in here, the outputs still get the safe look below.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        frames(shared, &mut r, &mut links, &safe_frame)
    }));
    if run.is_err() {
        tracing::error!("lights: the render thread failed; sending the safe look");
    }
    // The safe look, normally reached within the flash limit; after a
    // failure or the limit (never expected) it is sent as it is, since the
    // daemon is going away.
    for _ in 0..FINAL_FRAMES {
        for link in &mut links {
            link.send(&safe_frame);
        }
        shared.frames.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(r.period);
    }
    for link in &mut links {
        link.close();
    }
    tracing::info!("lights: safe look sent; outputs closed");
}

/// Frames at the fixed rate until closing has reached the safe look.
fn frames(shared: &Shared, r: &mut Render, links: &mut [Link], safe_frame: &[u8]) {
    let start = Instant::now();
    let mut frame = vec![0u8; r.rig.len()];
    let mut next = start;
    let mut closing_since: Option<f64> = None;
    let mut limiter_logged = false;
    loop {
        let now_s = start.elapsed().as_secs_f64();
        let input = shared
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(input) = input {
            r.engine.on_input(input, now_s);
        }
        if closing_since.is_none() && shared.closing.load(Ordering::Relaxed) {
            r.engine.close();
            closing_since = Some(now_s);
        }
        let looks = r.engine.tick(now_s);
        r.rig.render(looks, &mut frame);
        r.limiter.apply(now_s, &mut frame);
        if let Some(since) = closing_since {
            if frame == safe_frame || now_s - since > CLOSE_LIMIT_S {
                break;
            }
        }
        for link in links.iter_mut() {
            link.send(&frame);
        }
        shared.frames.fetch_add(1, Ordering::Relaxed);
        if !limiter_logged && r.limiter.held() > 0 {
            tracing::info!(
                "lights: the flash limiter is holding back changes that would flash \
                 more than {} times a second (logged once)",
                r.max_flashes
            );
            limiter_logged = true;
        }
        next += r.period;
        let now = Instant::now();
        if next < now {
            // Behind (a stalled machine): skip the missed frames rather than
            // send a burst.
            next = now + r.period;
        }
        if closing_since.is_none() {
            // park may wake early (close, or spuriously): keep the frame rate
            // unless closing.
            loop {
                let left = next.saturating_duration_since(Instant::now());
                if left.is_zero() || shared.closing.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::park_timeout(left);
            }
        } else {
            std::thread::sleep(next.saturating_duration_since(now));
        }
    }
}
