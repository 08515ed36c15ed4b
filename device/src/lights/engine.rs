//! The lighting operator: turns readings (once a second) into a look per
//! zone at every frame (e.g. 40 a second). Scenes change only when another
//! scene's emotion leads by the hysteresis and the current one has been held
//! for the minimum time, and then by a timed crossfade; brightness, saturation
//! and UV follow their curves through separate attack and release smoothing.
//! Silence fades to the idle look; no reading for a while holds, then fades to
//! the safe look; closing goes to the safe look at once. Safety against
//! flashing is not here but in the limiter, after every mapping.

use super::scene::{Look, Mapping, Rgb, Values};

/// What a reading tells the lights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// Music, with its smoothed published values.
    Music(Values),
    /// Music unlike what the model learned (`in_range` false: speech, noise,
    /// a test tone): its values are a guess, so the curves follow them but
    /// the scene stays.
    Unsure(Values),
    /// Silence or warm-up: no emotions claimed.
    Quiet,
}

impl Input {
    /// The lights' view of a reading (copies a few numbers, allocates nothing).
    pub fn from_reading(r: &earshot_protocol::Reading) -> Self {
        match (&r.analysis, r.state) {
            (Some(a), earshot_protocol::InputState::Music) => {
                let values = Values {
                    emotions: a.emotions.to_array(),
                    mid_level: a.mid_level.to_array(),
                };
                if a.in_range {
                    Input::Music(values)
                } else {
                    Input::Unsure(values)
                }
            }
            _ => Input::Quiet,
        }
    }
}

/// Timing and looks, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Time constant of rising brightness, saturation and UV.
    pub attack_s: f32,
    /// Time constant of falling brightness, saturation and UV.
    pub release_s: f32,
    /// Least time a scene stays before another may take over.
    pub hold_s: f32,
    /// How far another scene's emotion must lead the current one's.
    pub hysteresis: f32,
    /// Duration of scene and idle crossfades.
    pub crossfade_s: f32,
    /// Scales every music and idle intensity (not the safe look).
    pub master: f32,
    /// Silence this long fades to the idle look.
    pub idle_after_s: f32,
    pub idle: Look,
    /// Shown on shutdown, fatal errors and a stalled pipeline.
    pub safe: Look,
    /// No reading for this long: the pipeline has stalled.
    pub stall_s: f32,
    /// A stall fades to the safe look over this long.
    pub stall_fade_s: f32,
}

/// What one zone shows at one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ZoneLook {
    /// Colour at full brightness.
    pub colour: Rgb,
    /// 0..1, master applied.
    pub intensity: f32,
    /// UV emitter level 0..1, master applied.
    pub uv: f32,
}

impl ZoneLook {
    fn lerp(a: &ZoneLook, b: &ZoneLook, t: f32) -> ZoneLook {
        let l = |x: f32, y: f32| x + (y - x) * t;
        ZoneLook {
            colour: [
                l(a.colour[0], b.colour[0]),
                l(a.colour[1], b.colour[1]),
                l(a.colour[2], b.colour[2]),
            ],
            intensity: l(a.intensity, b.intensity),
            uv: l(a.uv, b.uv),
        }
    }

    fn of(look: &Look) -> ZoneLook {
        ZoneLook {
            colour: look.colour,
            intensity: look.intensity,
            uv: 0.0,
        }
    }
}

/// What the lights are doing, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Following the music in this scene.
    Music(usize),
    /// Silence (or no music yet): the idle look.
    Idle,
    /// No reading for `stall_s`: fading to the safe look.
    Stalled,
    /// Shutting down: the safe look.
    Closing,
}

/// One-pole smoothing with separate rise and fall time constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoother {
    pub value: f32,
}

impl Smoother {
    /// Moves toward `target` over `dt_s`; a time constant of 0 jumps.
    pub fn step(&mut self, target: f32, dt_s: f32, attack_s: f32, release_s: f32) -> f32 {
        let tau = if target > self.value {
            attack_s
        } else {
            release_s
        };
        if tau <= 0.0 || !dt_s.is_finite() {
            self.value = target;
        } else {
            let k = 1.0 - (-dt_s.max(0.0) / tau).exp();
            self.value += (target - self.value) * k;
        }
        self.value
    }
}

/// The state of the lights between frames.
#[derive(Debug, Clone)]
pub struct Engine {
    b: Behaviour,
    mapping: Mapping,
    started_s: f64,
    last_input_s: Option<f64>,
    quiet_since_s: Option<f64>,
    values: Option<Values>,
    scene: Option<usize>,
    scene_since_s: f64,
    closing: bool,
    mode: Mode,
    brightness: Vec<Smoother>,
    saturation: Vec<Smoother>,
    uv: Vec<Smoother>,
    palette: Vec<Smoother>,
    fade_from: Vec<ZoneLook>,
    fade_start_s: f64,
    fade_s: f32,
    shown: Vec<ZoneLook>,
    last_tick_s: f64,
}

impl Engine {
    /// Starts at the safe look (the lights were dark, or in their safe state)
    /// at `now_s`, fading to the idle look until music arrives.
    pub fn new(b: Behaviour, mapping: Mapping, now_s: f64) -> Self {
        let zones = mapping.zones.len();
        let safe = ZoneLook::of(&b.safe);
        let crossfade_s = b.crossfade_s;
        Self {
            b,
            mapping,
            started_s: now_s,
            last_input_s: None,
            quiet_since_s: None,
            values: None,
            scene: None,
            scene_since_s: now_s,
            closing: false,
            mode: Mode::Idle,
            brightness: vec![Smoother { value: 0.0 }; zones],
            saturation: vec![Smoother { value: 1.0 }; zones],
            uv: vec![Smoother { value: 0.0 }; zones],
            palette: vec![Smoother { value: 0.5 }; zones],
            fade_from: vec![safe; zones],
            fade_start_s: now_s,
            fade_s: crossfade_s,
            shown: vec![safe; zones],
            last_tick_s: now_s,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn scene(&self) -> Option<usize> {
        self.scene
    }

    /// A reading arrived at `now_s`.
    pub fn on_input(&mut self, input: Input, now_s: f64) {
        self.last_input_s = Some(now_s);
        match input {
            Input::Music(values) => {
                self.quiet_since_s = None;
                self.values = Some(values);
                self.choose_scene(&values, now_s);
            }
            Input::Unsure(values) => {
                self.quiet_since_s = None;
                self.values = Some(values);
            }
            Input::Quiet => {
                self.quiet_since_s.get_or_insert(now_s);
            }
        }
    }

    /// Shutdown: the safe look from the next frame on.
    pub fn close(&mut self) {
        self.closing = true;
    }

    fn choose_scene(&mut self, values: &Values, now_s: f64) {
        let scores: Vec<f32> = self
            .mapping
            .scenes
            .iter()
            .map(|s| s.when.value(values))
            .collect();
        let best = scores
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        let Some(best) = best else { return };
        match self.scene {
            None => {
                self.scene = Some(best);
                self.scene_since_s = now_s;
            }
            Some(current) if current != best => {
                let leads = scores[best] >= scores[current] + self.b.hysteresis;
                let held = now_s - self.scene_since_s >= f64::from(self.b.hold_s);
                if leads && held {
                    tracing::debug!(
                        "lights: scene {} -> {}",
                        self.mapping.scenes[current].name,
                        self.mapping.scenes[best].name
                    );
                    self.scene = Some(best);
                    self.scene_since_s = now_s;
                }
            }
            Some(_) => {}
        }
    }

    fn current_mode(&self, now_s: f64) -> Mode {
        if self.closing {
            return Mode::Closing;
        }
        let last = self.last_input_s.unwrap_or(self.started_s);
        if now_s - last >= f64::from(self.b.stall_s) {
            return Mode::Stalled;
        }
        let quiet_long = self
            .quiet_since_s
            .is_some_and(|t| now_s - t >= f64::from(self.b.idle_after_s));
        match (self.scene, self.values.is_some() && !quiet_long) {
            (Some(scene), true) => Mode::Music(scene),
            _ => Mode::Idle,
        }
    }

    /// The look of every zone at `now_s` (called once per frame).
    pub fn tick(&mut self, now_s: f64) -> &[ZoneLook] {
        let dt = (now_s - self.last_tick_s).max(0.0) as f32;
        self.last_tick_s = now_s;
        let mode = self.current_mode(now_s);
        if mode != self.mode {
            self.fade_from.clone_from(&self.shown);
            self.fade_start_s = now_s;
            self.fade_s = match mode {
                Mode::Stalled => self.b.stall_fade_s,
                Mode::Closing => 0.0,
                Mode::Music(_) | Mode::Idle => self.b.crossfade_s,
            };
            if mode == Mode::Stalled {
                tracing::warn!(
                    "lights: no reading for {:.0} s; fading to the safe look over {:.0} s",
                    self.b.stall_s,
                    self.b.stall_fade_s
                );
            } else if self.mode == Mode::Stalled {
                tracing::info!("lights: readings are back");
            }
            self.mode = mode;
        }
        // Curves keep following the last music values whatever the mode, so
        // that music coming back starts from where it was.
        if let Some(values) = &self.values {
            for (z, zone) in self.mapping.zones.iter().enumerate() {
                let (a, r) = (self.b.attack_s, self.b.release_s);
                self.brightness[z].step(zone.brightness.eval(values), dt, a, r);
                let sat = zone.saturation.map_or(1.0, |c| c.eval(values));
                self.saturation[z].step(sat, dt, a, r);
                let uv = zone.uv.map_or(0.0, |c| c.eval(values));
                self.uv[z].step(uv, dt, a, r);
                if let Some(p) = &zone.palette {
                    // Colour drifts at the pace of the slower of the two.
                    let slow = a.max(r);
                    self.palette[z].step(p.position(values), dt, slow, slow);
                }
            }
        }
        let p = if self.fade_s <= 0.0 {
            1.0
        } else {
            ((now_s - self.fade_start_s) / f64::from(self.fade_s)).clamp(0.0, 1.0) as f32
        };
        let master = self.b.master;
        for z in 0..self.shown.len() {
            let target = match mode {
                Mode::Music(scene) => {
                    let mut colour = self.mapping.scenes[scene].colours[z];
                    if let Some(p) = &self.mapping.zones[z].palette {
                        let drift = p.colour_at(self.palette[z].value);
                        let k = p.amount.clamp(0.0, 1.0);
                        colour = [0, 1, 2].map(|i| colour[i] + (drift[i] - colour[i]) * k);
                    }
                    let s = self.saturation[z].value.clamp(0.0, 1.0);
                    ZoneLook {
                        colour: colour.map(|c| 1.0 - s + c * s),
                        intensity: self.brightness[z].value.clamp(0.0, 1.0) * master,
                        uv: self.uv[z].value.clamp(0.0, 1.0) * master,
                    }
                }
                Mode::Idle => {
                    let mut l = ZoneLook::of(&self.b.idle);
                    l.intensity *= master;
                    l
                }
                Mode::Stalled | Mode::Closing => ZoneLook::of(&self.b.safe),
            };
            self.shown[z] = ZoneLook::lerp(&self.fade_from[z], &target, p);
        }
        &self.shown
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lights::scene::preset;
    use proptest::prelude::*;

    pub(crate) fn behaviour() -> Behaviour {
        Behaviour {
            attack_s: 1.0,
            release_s: 3.0,
            hold_s: 5.0,
            hysteresis: 0.1,
            crossfade_s: 2.0,
            master: 1.0,
            idle_after_s: 3.0,
            idle: Look {
                colour: [1.0, 0.5, 0.0],
                intensity: 0.2,
            },
            safe: Look::BLACKOUT,
            stall_s: 5.0,
            stall_fade_s: 4.0,
        }
    }

    fn music(tender: f32, happy: f32, energy: f32) -> Input {
        let mut v = Values::default();
        v.emotions[7] = tender;
        v.emotions[5] = happy;
        v.emotions[1] = energy;
        Input::Music(v)
    }

    /// Runs at 40 Hz from `from_s` to `to_s`, feeding `input` once a second.
    fn run(e: &mut Engine, from_s: f64, to_s: f64, input: Option<Input>) -> Vec<ZoneLook> {
        let mut out = Vec::new();
        let mut t = from_s;
        let mut next_reading = from_s;
        while t < to_s {
            if let Some(i) = input {
                if t >= next_reading {
                    e.on_input(i, t);
                    next_reading += 1.0;
                }
            }
            out.push(e.tick(t)[0]);
            t += 0.025;
        }
        out
    }

    fn bar() -> Engine {
        Engine::new(behaviour(), preset("bar").unwrap().mapping, 0.0)
    }

    #[test]
    fn attack_is_faster_than_release() {
        let mut s = Smoother { value: 0.0 };
        for _ in 0..40 {
            s.step(1.0, 0.025, 1.0, 3.0);
        }
        let up = s.value;
        let mut s = Smoother { value: 1.0 };
        for _ in 0..40 {
            s.step(0.0, 0.025, 1.0, 3.0);
        }
        let down = 1.0 - s.value;
        assert!((up - (1.0 - (-1.0f32).exp())).abs() < 1e-3, "{up}");
        assert!(
            up > 0.6 && down < 0.3,
            "rise {up} in 1 s, fall {down} in 1 s"
        );
    }

    #[test]
    fn starts_dark_then_fades_to_idle_then_follows_music() {
        let mut e = bar();
        let first = e.tick(0.0)[0];
        assert_eq!(first.intensity, 0.0, "starts at the safe look");
        let idle = run(&mut e, 0.025, 2.5, Some(Input::Quiet));
        assert!((idle.last().unwrap().intensity - 0.2).abs() < 1e-6);
        assert_eq!(e.mode(), Mode::Idle);
        run(&mut e, 2.5, 10.0, Some(music(0.8, 0.2, 0.9)));
        assert_eq!(e.mode(), Mode::Music(0), "calm scene (tender leads)");
        let look = e.tick(10.0)[0];
        assert!(look.intensity > 0.7, "energy 0.9 is bright: {look:?}");
    }

    #[test]
    fn scene_changes_wait_for_hold_and_hysteresis() {
        let mut e = bar();
        run(&mut e, 0.0, 2.0, Some(music(0.6, 0.3, 0.5)));
        assert_eq!(e.scene(), Some(0));
        // happy leads, but by less than the hysteresis: no change
        run(&mut e, 2.0, 12.0, Some(music(0.6, 0.65, 0.5)));
        assert_eq!(e.scene(), Some(0));
        // leads clearly, but the calm scene began at 0 s and hold is 5 s: already held
        let mut e = bar();
        run(&mut e, 0.0, 2.0, Some(music(0.6, 0.3, 0.5)));
        run(&mut e, 2.0, 4.9, Some(music(0.3, 0.9, 0.5)));
        assert_eq!(e.scene(), Some(0), "held for 5 s");
        run(&mut e, 4.9, 6.0, Some(music(0.3, 0.9, 0.5)));
        assert_eq!(e.scene(), Some(1));
    }

    #[test]
    fn readings_out_of_range_move_brightness_but_not_the_scene() {
        let mut e = bar();
        run(&mut e, 0.0, 20.0, Some(music(0.9, 0.1, 0.2)));
        assert_eq!(e.scene(), Some(0));
        let dim = e.tick(20.0)[0].intensity;
        let Input::Music(loud_happy) = music(0.1, 0.9, 0.9) else {
            unreachable!()
        };
        run(&mut e, 20.0, 40.0, Some(Input::Unsure(loud_happy)));
        assert_eq!(
            e.scene(),
            Some(0),
            "an unsure reading never changes the scene"
        );
        assert!(e.tick(40.0)[0].intensity > dim + 0.2);
    }

    #[test]
    fn valence_drifts_the_bar_wash_warmer_within_its_scene() {
        let with = |valence: f32| {
            let mut e = bar();
            let Input::Music(mut v) = music(0.9, 0.1, 0.5) else {
                unreachable!()
            };
            v.emotions[0] = valence;
            run(&mut e, 0.0, 30.0, Some(Input::Music(v)));
            assert_eq!(e.scene(), Some(0));
            e.tick(30.0)[0].colour
        };
        let (cool, warm) = (with(0.2), with(0.8));
        assert!(
            warm[0] - warm[2] > cool[0] - cool[2] + 0.1,
            "{cool:?} {warm:?}"
        );
    }

    #[test]
    fn crossfades_take_their_time() {
        let mut b = behaviour();
        b.hold_s = 0.0;
        b.crossfade_s = 4.0;
        let mut e = Engine::new(b, preset("bar").unwrap().mapping, 0.0);
        run(&mut e, 0.0, 20.0, Some(music(0.9, 0.1, 0.5)));
        let calm = e.tick(20.0)[0].colour;
        let looks = run(&mut e, 20.0, 30.0, Some(music(0.1, 0.9, 0.5)));
        let happy = looks.last().unwrap().colour;
        assert_ne!(calm, happy);
        // halfway through the 4 s fade (2 s = 80 frames), about halfway in colour
        let mid = looks[80].colour;
        let frac = (mid[2] - calm[2]) / (happy[2] - calm[2]);
        assert!((0.4..0.6).contains(&frac), "{frac}");
    }

    #[test]
    fn silence_fades_to_idle_and_a_stall_to_the_safe_look() {
        let mut e = bar();
        run(&mut e, 0.0, 10.0, Some(music(0.9, 0.1, 0.9)));
        run(&mut e, 10.0, 12.9, Some(Input::Quiet));
        assert!(
            matches!(e.mode(), Mode::Music(_)),
            "short pauses keep the scene"
        );
        let idle = run(&mut e, 12.9, 20.0, Some(Input::Quiet));
        assert_eq!(e.mode(), Mode::Idle);
        assert!((idle.last().unwrap().intensity - 0.2).abs() < 1e-6);
        // no readings at all: held for stall_s (5 s), then 4 s to black
        let held = run(&mut e, 20.0, 24.9, None);
        assert!(held.iter().all(|l| (l.intensity - 0.2).abs() < 1e-6));
        let fading = run(&mut e, 24.9, 30.0, None);
        assert_eq!(e.mode(), Mode::Stalled);
        assert_eq!(fading.last().unwrap().intensity, 0.0);
        assert!(fading[80].intensity > 0.0 && fading[80].intensity < 0.2);
        // readings come back: music again
        run(&mut e, 30.0, 40.0, Some(music(0.9, 0.1, 0.9)));
        assert!(matches!(e.mode(), Mode::Music(_)));
    }

    #[test]
    fn master_dims_music_and_idle_but_not_the_safe_look() {
        let mut b = behaviour();
        b.master = 0.5;
        b.safe = Look {
            colour: [1.0; 3],
            intensity: 0.4,
        };
        let mut e = Engine::new(b, preset("bar").unwrap().mapping, 0.0);
        let idle = run(&mut e, 0.0, 3.0, Some(Input::Quiet));
        assert!((idle.last().unwrap().intensity - 0.1).abs() < 1e-6);
        e.close();
        assert!((e.tick(3.1)[0].intensity - 0.4).abs() < 1e-6);
        assert_eq!(e.mode(), Mode::Closing);
    }

    proptest! {
        /// Smoothing never overshoots: the value stays between where it was
        /// and the targets it was given.
        #[test]
        fn smoothing_stays_within_its_inputs(
            start in 0.0f32..1.0,
            steps in proptest::collection::vec((0.0f32..1.0, 0.0f32..0.5), 1..200),
            attack in 0.0f32..10.0,
            release in 0.0f32..10.0,
        ) {
            let mut s = Smoother { value: start };
            let (mut lo, mut hi) = (start, start);
            for (target, dt) in steps {
                lo = lo.min(target);
                hi = hi.max(target);
                let prev = s.value;
                let v = s.step(target, dt, attack, release);
                prop_assert!(v >= lo - 1e-6 && v <= hi + 1e-6);
                // moves toward the target, never away
                prop_assert!((target - v).abs() <= (target - prev).abs() + 1e-6);
            }
        }

        /// Whatever the readings, every zone's look stays in range.
        #[test]
        fn looks_stay_in_range(
            readings in proptest::collection::vec(
                proptest::option::of(proptest::array::uniform8(-1.0f32..2.0)), 1..40),
        ) {
            let mut e = Engine::new(behaviour(), preset("club").unwrap().mapping, 0.0);
            let mut t = 0.0;
            for r in readings {
                let input = match r {
                    Some(emotions) => Input::Music(Values { emotions, mid_level: [0.5; 7] }),
                    None => Input::Quiet,
                };
                e.on_input(input, t);
                for _ in 0..40 {
                    t += 0.025;
                    for l in e.tick(t) {
                        prop_assert!((0.0..=1.0).contains(&l.intensity));
                        prop_assert!((0.0..=1.0).contains(&l.uv));
                        prop_assert!(l.colour.iter().all(|c| (0.0..=1.0).contains(c)));
                    }
                }
            }
        }
    }
}
