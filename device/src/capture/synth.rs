//! A synthetic test signal (the built-in demo until the demo became real
//! music, see `demo`): synthesised music whose character changes every 20 s.
//! Its pure wavetable tones are unlike the film recordings the model learned
//! from, so the model's readings of it mean little; it serves tests and
//! experiments that need a deterministic signal with sections of known level.
//!
//! One cycle (64 s): consonant major legato (pads and a melody) -> dissonant
//! minor staccato (clusters, tritone bass, noise hits, fast) -> sparse calm
//! (soft pentatonic notes, long decays) -> 4 s of silence (the "no music"
//! gate). Wavetable voices with multiplicative envelopes: deterministic and
//! cheap (well under 1 % of a core).

use super::{AudioSource, CaptureError, Read};
use crate::frontend::SAMPLE_RATE_HZ;
use crate::Shutdown;

const SR: f32 = SAMPLE_RATE_HZ as f32;
const TABLE: usize = 2048;
/// Samples per `read` (100 ms).
const BLOCK: usize = SAMPLE_RATE_HZ as usize / 10;
const SECTION_S: f32 = 20.0;
const PAUSE_S: f32 = 4.0;
const MAX_VOICES: usize = 48;

/// Sections of the cycle, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Bright,
    Tense,
    Calm,
    Pause,
}

impl Section {
    /// Section at `t` seconds and the step length it schedules notes on.
    fn at(t: f32) -> (Section, f32) {
        let cycle = 3.0 * SECTION_S + PAUSE_S;
        let t = t % cycle;
        if t < SECTION_S {
            (Section::Bright, 0.3)
        } else if t < 2.0 * SECTION_S {
            (Section::Tense, 0.1)
        } else if t < 3.0 * SECTION_S {
            (Section::Calm, 0.75)
        } else {
            (Section::Pause, 1.0)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Section::Bright => "consonant major legato",
            Section::Tense => "dissonant minor staccato",
            Section::Calm => "sparse calm",
            Section::Pause => "silence",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Timbre {
    Pad,
    Pluck,
    Sine,
    Noise,
}

#[derive(Debug, Clone, Copy)]
struct Voice {
    timbre: Timbre,
    phase: f32,
    inc: f32,
    gain: f32,
    /// Linear attack increment per sample (gain rises to `peak`).
    attack: f32,
    peak: f32,
    rising: bool,
    /// Per-sample decay factors while held and after release.
    decay: f32,
    release: f32,
    hold: u32,
    age: u32,
}

fn midi_hz(note: i32) -> f32 {
    440.0 * 2f32.powf((note - 69) as f32 / 12.0)
}

fn factor(tau_s: f32) -> f32 {
    (-1.0 / (tau_s * SR)).exp()
}

/// The synthesiser.
pub struct Synth {
    tables: [Vec<f32>; 3],
    voices: Vec<Voice>,
    t: u64,
    next_step: u64,
    step: u64,
    noise: u32,
}

impl Default for Synth {
    fn default() -> Self {
        Self::new()
    }
}

impl Synth {
    pub fn new() -> Self {
        let table = |harmonics: &[(f32, f32)]| -> Vec<f32> {
            let mut t: Vec<f32> = (0..TABLE)
                .map(|i| {
                    let x = 2.0 * std::f32::consts::PI * i as f32 / TABLE as f32;
                    harmonics.iter().map(|&(h, a)| a * (h * x).sin()).sum()
                })
                .collect();
            let peak = t.iter().fold(0f32, |m, v| m.max(v.abs()));
            t.iter_mut().for_each(|v| *v /= peak);
            t
        };
        Self {
            tables: [
                table(&[(1.0, 1.0), (2.0, 0.5), (3.0, 0.3), (4.0, 0.2), (5.0, 0.1)]),
                table(
                    &(1..12)
                        .map(|h| (h as f32, 1.0 / h as f32))
                        .collect::<Vec<_>>(),
                ),
                table(&[(1.0, 1.0), (2.0, 0.08)]),
            ],
            voices: Vec::with_capacity(MAX_VOICES),
            t: 0,
            next_step: 0,
            step: 0,
            noise: 0x1234_5678,
        }
    }

    /// The section playing at the current position.
    pub fn section(&self) -> Section {
        Section::at(self.t as f32 / SR).0
    }

    #[allow(clippy::too_many_arguments)]
    fn note(
        &mut self,
        timbre: Timbre,
        midi: i32,
        peak: f32,
        attack_s: f32,
        hold_s: f32,
        decay_tau_s: f32,
        release_tau_s: f32,
    ) {
        if self.voices.len() >= MAX_VOICES {
            self.voices.remove(0);
        }
        self.voices.push(Voice {
            timbre,
            phase: 0.0,
            inc: midi_hz(midi) / SR,
            gain: 0.0,
            attack: peak / (attack_s * SR).max(1.0),
            peak,
            rising: true,
            decay: factor(decay_tau_s),
            release: factor(release_tau_s),
            hold: (hold_s * SR) as u32,
            age: 0,
        });
    }

    /// Starts the notes of step `k` of `section`.
    fn schedule(&mut self, section: Section, k: u64) {
        match section {
            Section::Bright => {
                // I - V - vi - IV in C major, a chord every 8 steps (2.4 s)
                const CHORDS: [[i32; 4]; 4] = [
                    [48, 60, 64, 67],
                    [43, 59, 62, 67],
                    [45, 60, 64, 69],
                    [41, 60, 65, 69],
                ];
                const MELODY: [i32; 8] = [72, 74, 76, 79, 76, 74, 72, 67];
                let chord = CHORDS[((k / 8) % 4) as usize];
                if k.is_multiple_of(8) {
                    for (i, &n) in chord.iter().enumerate() {
                        let peak = if i == 0 { 0.10 } else { 0.06 };
                        self.note(Timbre::Pad, n, peak, 0.25, 2.3, 6.0, 0.4);
                    }
                }
                if k.is_multiple_of(2) {
                    let n = MELODY[((k / 2) % 8) as usize];
                    self.note(Timbre::Sine, n, 0.07, 0.05, 0.55, 3.0, 0.25);
                }
            }
            Section::Tense => {
                // clusters around a B diminished / E minor colour, short and loud
                const CLUSTERS: [[i32; 3]; 4] =
                    [[52, 53, 58], [59, 60, 65], [55, 56, 62], [50, 51, 56]];
                const PATTERN: [bool; 16] = [
                    true, false, true, true, false, true, false, true, true, false, true, false,
                    true, true, false, true,
                ];
                if PATTERN[(k % 16) as usize] {
                    for &n in &CLUSTERS[((k / 16) % 4) as usize] {
                        self.note(Timbre::Pluck, n, 0.09, 0.002, 0.05, 0.08, 0.03);
                    }
                }
                if k.is_multiple_of(4) {
                    let bass = if (k / 8).is_multiple_of(2) { 35 } else { 41 }; // B1 / F2: a tritone
                    self.note(Timbre::Pluck, bass, 0.2, 0.003, 0.12, 0.15, 0.05);
                }
                if k % 8 == 4 {
                    self.note(Timbre::Noise, 60, 0.25, 0.001, 0.04, 0.05, 0.03);
                }
            }
            Section::Calm => {
                const PENTATONIC: [i32; 7] = [57, 60, 62, 64, 67, 69, 72];
                if k.is_multiple_of(2) {
                    let n = PENTATONIC[((k * 5 / 2) % 7) as usize];
                    self.note(Timbre::Sine, n, 0.05, 0.08, 1.0, 2.5, 1.0);
                }
                if k.is_multiple_of(12) {
                    self.note(Timbre::Sine, 45, 0.04, 1.0, 8.0, 12.0, 2.0);
                }
            }
            Section::Pause => self.voices.clear(),
        }
    }

    fn next_sample(&mut self) -> f32 {
        if self.t >= self.next_step {
            let (section, step_s) = Section::at(self.t as f32 / SR);
            self.schedule(section, self.step);
            self.step += 1;
            self.next_step = self.t + (step_s * SR) as u64;
        }
        let mut sum = 0.0;
        for v in &mut self.voices {
            let s = match v.timbre {
                Timbre::Noise => {
                    self.noise ^= self.noise << 13;
                    self.noise ^= self.noise >> 17;
                    self.noise ^= self.noise << 5;
                    (self.noise as f32 / u32::MAX as f32) * 2.0 - 1.0
                }
                t => {
                    let table = &self.tables[match t {
                        Timbre::Pad => 0,
                        Timbre::Pluck => 1,
                        _ => 2,
                    }];
                    table[((v.phase * TABLE as f32) as usize).min(TABLE - 1)]
                }
            };
            sum += s * v.gain;
            v.phase += v.inc;
            if v.phase >= 1.0 {
                v.phase -= 1.0;
            }
            if v.rising {
                v.gain += v.attack;
                if v.gain >= v.peak {
                    v.gain = v.peak;
                    v.rising = false;
                }
            } else if v.age < v.hold {
                v.gain *= v.decay;
            } else {
                v.gain *= v.release;
            }
            v.age += 1;
        }
        self.voices.retain(|v| v.rising || v.gain > 1e-5);
        self.t += 1;
        sum.clamp(-1.0, 1.0)
    }
}

impl AudioSource for Synth {
    fn label(&self) -> String {
        "synthetic".into()
    }

    fn read(&mut self, out: &mut Vec<f32>, _shutdown: &Shutdown) -> Result<Read, CaptureError> {
        let before = self.section();
        for _ in 0..BLOCK {
            let s = self.next_sample();
            out.push(s);
        }
        let after = self.section();
        if before != after {
            tracing::debug!("synthetic: {}", after.name());
        }
        Ok(Read::Audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::level_dbfs;

    fn level(d: &mut Synth, seconds: f32) -> f32 {
        let mut out = Vec::new();
        let never = Shutdown::new();
        while out.len() < (seconds * SR) as usize {
            d.read(&mut out, &never).unwrap();
        }
        level_dbfs(out.iter().map(|&x| f64::from(x * x)).sum(), out.len())
    }

    #[test]
    fn sections_differ_in_level_and_the_pause_is_silent() {
        let mut d = Synth::new();
        let bright = level(&mut d, 20.0);
        let tense = level(&mut d, 20.0);
        let calm = level(&mut d, 20.0);
        let _ = level(&mut d, 0.5); // release tails
        let pause = level(&mut d, 3.5);
        assert!(
            bright > -40.0 && tense > -40.0 && calm < bright - 3.0,
            "{bright} {tense} {calm}"
        );
        assert!(calm > -50.0, "calm is still music: {calm}");
        assert!(pause <= -100.0, "{pause}");
        assert_eq!(d.section(), Section::Bright); // the cycle restarts
    }
}
