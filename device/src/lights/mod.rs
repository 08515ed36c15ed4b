//! Lights that follow the music's mood, safely.
//!
//! One direction: a reading -> [`engine`] (scene choice with hysteresis and
//! hold, crossfades, attack/release smoothing, idle, stall and safe looks;
//! the mapping itself is data, in [`scene`]) -> [`fixture`] (each light's
//! channels) -> [`limiter`] (no channel flashes more than 3 times a second) ->
//! [`output`] (Art-Net, sACN, WLED, GPIO: they only carry frames). The
//! [`render`] thread runs this at a fixed rate, apart from the readings, so
//! that fades are smooth and the lights never wait on audio or inference.
//! Configuration is `[lights]` ([`config`]); docs/lights.md describes it.

pub mod config;
pub mod engine;
pub mod fixture;
pub mod limiter;
pub mod output;
pub mod render;
pub mod scene;
pub mod sink;

use std::time::Duration;

pub use config::{LightsConfig, LightsSettings};
pub use render::Lights;

use fixture::Rig;
use limiter::Limiter;
use output::{Link, LinkStatus, Transport};

/// Why the lights could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LightsError {
    #[error("lights: cannot start the render thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(
        "lights: GPIO {pin}: {source}; is this a Raspberry Pi, and may this user use /dev/gpiomem?"
    )]
    Gpio {
        pin: u8,
        #[source]
        source: std::io::Error,
    },
}

/// The transports `settings` asks for, each with its name.
pub fn transports(settings: &LightsSettings) -> Result<Vec<Box<dyn Transport>>, LightsError> {
    let rig = Rig::new(settings.fixtures.clone());
    let layout = output::DmxLayout::new(&rig);
    let mut out: Vec<Box<dyn Transport>> = Vec::new();
    if let Some(target) = settings.artnet {
        out.push(Box::new(output::artnet::ArtNet::new(
            target,
            layout.clone(),
        )));
    }
    if let Some(s) = &settings.sacn {
        let destination = match s.target {
            Some(a) => output::sacn::Destination::Unicast(a),
            None => output::sacn::Destination::Multicast,
        };
        out.push(Box::new(output::sacn::Sacn::new(
            destination,
            layout,
            &s.source_name,
            s.priority,
            s.multicast_ttl,
        )));
    }
    for (i, w) in settings.wled.iter().enumerate() {
        out.push(Box::new(output::wled::Wled::new(
            i,
            w.target,
            w.protocol,
            w.leds,
            w.timeout_s,
            rig.offset(w.fixture),
        )));
    }
    if !settings.gpio.is_empty() {
        out.push(Box::new(gpio_transport(settings, &rig)?));
    }
    Ok(out)
}

#[cfg(feature = "gpio")]
fn gpio_transport(settings: &LightsSettings, rig: &Rig) -> Result<output::gpio::Gpio, LightsError> {
    let mut pins: Vec<(u8, usize, Box<dyn output::gpio::PwmPin>)> = Vec::new();
    for g in &settings.gpio {
        let pin = output::gpio::RppalPin::open(g.pin, g.frequency_hz)
            .map_err(|source| LightsError::Gpio { pin: g.pin, source })?;
        pins.push((g.pin, rig.offset(g.fixture), Box::new(pin)));
    }
    Ok(output::gpio::Gpio::new(pins))
}

#[cfg(not(feature = "gpio"))]
fn gpio_transport(settings: &LightsSettings, _: &Rig) -> Result<output::gpio::Gpio, LightsError> {
    // Validation refuses [[lights.gpio]] in builds without the feature.
    let pin = settings.gpio.first().map_or(0, |g| g.pin);
    Err(LightsError::Gpio {
        pin,
        source: std::io::Error::other("this earshotd was built without the \"gpio\" feature"),
    })
}

/// Starts the lights; `status` gives each output its health entry by name.
pub fn start(
    settings: &LightsSettings,
    status: &dyn Fn(&str) -> Box<dyn LinkStatus>,
) -> Result<Lights, LightsError> {
    let links: Vec<Link> = transports(settings)?
        .into_iter()
        .map(|t| {
            tracing::info!("{}: sending to {}", t.name(), t.target());
            let s = status(t.name());
            Link::new(t, s)
        })
        .collect();
    tracing::info!(
        "lights: {} fixtures in {} zones, {} scenes, {} frames a second",
        settings.fixtures.len(),
        settings.mapping.zones.len(),
        settings.mapping.scenes.len(),
        settings.refresh_hz
    );
    Lights::start(settings, links).map_err(LightsError::Thread)
}

/// `earshotd lights test`: walks every fixture through its channels, one at
/// a time at full for `step`, everything else dark, logging where each is,
/// then blacks out. Returns early (dark) when `stop` says so.
pub fn walk(
    settings: &LightsSettings,
    step: Duration,
    stop: &dyn Fn() -> bool,
    say: &mut dyn FnMut(&str),
) -> Result<(), LightsError> {
    let rig = Rig::new(settings.fixtures.clone());
    let mut links: Vec<Link> = transports(settings)?
        .into_iter()
        .map(|t| Link::new(t, Box::new(output::NoStatus)))
        .collect();
    let period = Duration::from_secs_f64(1.0 / f64::from(settings.refresh_hz));
    // The walk goes through the limiter too: a step shorter than a third of
    // a second is slowed by it rather than allowed to flash.
    let mut limiter = Limiter::new(rig.len(), settings.max_flashes_per_s);
    let start = std::time::Instant::now();
    // Dark, with fixed channels (`off`, `full`) at their values throughout:
    // an `off` strobe channel must never be walked to full.
    let mut dark = vec![0u8; rig.len()];
    rig.render_all(&engine::ZoneLook::default(), &mut dark);
    let mut frame = dark.clone();
    // Sends `frame` for `for_`, and on until the limiter lets all of it
    // through (at most a little over a second more); `stop` cuts it short.
    let mut send = |frame: &mut [u8], links: &mut Vec<Link>, for_: Duration, stoppable: bool| {
        let until = std::time::Instant::now() + for_;
        let give_up = until + Duration::from_secs_f64(limiter::WINDOW_S + 0.2);
        let want = frame.to_vec();
        loop {
            frame.copy_from_slice(&want);
            limiter.apply(start.elapsed().as_secs_f64(), frame);
            for l in links.iter_mut() {
                l.send(frame);
            }
            let now = std::time::Instant::now();
            if (now >= until && *frame == want[..]) || now >= give_up || (stoppable && stop()) {
                break;
            }
            std::thread::sleep(period);
        }
    };
    'walk: for (i, f) in rig.fixtures.iter().enumerate() {
        for (c, component) in f.channels.iter().enumerate() {
            if stop() {
                break 'walk;
            }
            if matches!(
                component,
                fixture::Component::Off | fixture::Component::Full
            ) {
                continue;
            }
            let place = match f.place {
                fixture::Place::Dmx { universe, address } => {
                    format!("universe {universe} address {}", usize::from(address) + c)
                }
                fixture::Place::Wled(n) => format!("WLED strip {} ({})", n + 1, component.name()),
                fixture::Place::Gpio(_) => "PWM".to_string(),
            };
            say(&format!(
                "{}: channel {} ({}) at {place}",
                f.name,
                c + 1,
                component.name()
            ));
            frame.copy_from_slice(&dark);
            frame[rig.offset(i) + c] = 255;
            send(&mut frame, &mut links, step, true);
        }
    }
    frame.copy_from_slice(&dark);
    send(&mut frame, &mut links, Duration::from_millis(500), false);
    for l in &mut links {
        l.close();
    }
    say("all fixtures dark");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::engine::{Behaviour, Engine, Input};
    use super::fixture::{profile, Fixture, Place, Rig};
    use super::limiter::tests::max_flashes_in_window;
    use super::limiter::Limiter;
    use super::scene::{preset, Look, Values};
    use proptest::prelude::*;

    /// The most jumpy behaviour a config allows: no smoothing, no hold, no
    /// hysteresis, no crossfade.
    fn jumpy() -> Behaviour {
        Behaviour {
            attack_s: 0.0,
            release_s: 0.0,
            hold_s: 0.0,
            hysteresis: 0.0,
            crossfade_s: 0.0,
            master: 1.0,
            idle_after_s: 0.0,
            idle: Look {
                colour: [1.0, 1.0, 1.0],
                intensity: 1.0,
            },
            safe: Look::BLACKOUT,
            stall_s: 1.5,
            stall_fade_s: 0.0,
        }
    }

    fn rig(zones: usize) -> Rig {
        let names = ["dimmer", "rgb", "drgb", "rgbw", "rgbwa", "rgbwauv"];
        Rig::new(
            names
                .iter()
                .enumerate()
                .map(|(i, p)| Fixture {
                    name: (*p).into(),
                    zone: i % zones,
                    channels: profile(p).unwrap(),
                    place: Place::Dmx {
                        universe: 1,
                        address: 1 + 10 * i as u16,
                    },
                })
                .collect(),
        )
    }

    /// Frames of every channel over time, with or without the limiter.
    /// A reading: music (trusted or not) with these emotions, or silence.
    type Step = (f64, Option<(bool, [f32; 8])>);

    fn frames(readings: &[Step], limit: bool) -> Vec<Vec<(f64, u8)>> {
        let mapping = preset("club").unwrap().mapping;
        let rig = rig(mapping.zones.len());
        let mut engine = Engine::new(jumpy(), mapping, 0.0);
        let mut limiter = Limiter::new(rig.len(), 3);
        let mut frame = vec![0; rig.len()];
        let mut per_channel = vec![Vec::new(); rig.len()];
        let end = readings.iter().map(|r| r.0).fold(0.0, f64::max) + 2.0;
        let mut next = 0;
        let mut t = 0.0;
        while t < end {
            while next < readings.len() && readings[next].0 <= t {
                let input = match readings[next].1 {
                    Some((in_range, emotions)) => {
                        let values = Values {
                            emotions,
                            mid_level: [0.5; 7],
                        };
                        if in_range {
                            Input::Music(values)
                        } else {
                            Input::Unsure(values)
                        }
                    }
                    None => Input::Quiet,
                };
                engine.on_input(input, t);
                next += 1;
            }
            rig.render(engine.tick(t), &mut frame);
            if limit {
                limiter.apply(t, &mut frame);
            }
            for (c, v) in frame.iter().enumerate() {
                per_channel[c].push((t, *v));
            }
            t += 0.025;
        }
        per_channel
    }

    fn worst(channels: &[Vec<(f64, u8)>]) -> usize {
        channels
            .iter()
            .map(|c| max_flashes_in_window(c, 1.0))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn without_the_limiter_jumpy_readings_would_flash() {
        // Readings alternating every 100 ms between loud-happy and quiet-sad.
        let readings: Vec<Step> = (0..60)
            .map(|i| {
                let e = if i % 2 == 0 {
                    [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
                } else {
                    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
                };
                (f64::from(i) * 0.1, Some((true, e)))
            })
            .collect();
        assert!(worst(&frames(&readings, false)) > 3);
        assert!(worst(&frames(&readings, true)) <= 3);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Any sequence of readings (music with any values, silence, gaps
        /// that stall the pipeline), at any pace, through the most jumpy
        /// settings: no channel of any profile flashes more than 3 times in
        /// any second.
        #[test]
        fn arbitrary_readings_never_flash_more_than_three_times_a_second(
            steps in proptest::collection::vec(
                (
                    0.0f64..2.5,
                    proptest::option::weighted(
                        0.8,
                        (proptest::bool::weighted(0.8), proptest::array::uniform8(0.0f32..1.0)),
                    ),
                ),
                1..80,
            ),
        ) {
            let mut t = 0.0;
            let readings: Vec<Step> = steps
                .into_iter()
                .map(|(dt, e)| {
                    t += dt;
                    (t, e)
                })
                .collect();
            prop_assert!(worst(&frames(&readings, true)) <= 3);
        }
    }
}
