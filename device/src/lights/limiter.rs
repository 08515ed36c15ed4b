//! The hard flash limiter: the last stage before any output, on every
//! channel value that leaves the daemon, whatever the mapping or input.
//!
//! A *flash* is a rise and a fall (or a fall and a rise) of more than 10 % of
//! full scale each (WCAG 2.3.1). Each channel's output is followed as a zigzag:
//! a *change* is confirmed when the value moves more than [`FLASH_STEP`] away
//! from the last extreme in the opposite direction. Every change after the
//! first completes a flash with the one before it, so counting reversals
//! counts flashes, and overlapping pairs too (stricter than WCAG's count).
//!
//! A value that would confirm a reversal while `max` reversals already fall
//! in the last [`WINDOW_S`] is held [`FLASH_STEP`] from the extreme instead,
//! until the oldest leaves the window (at most about a second). Slower
//! material passes unchanged. The window is a little longer than a second so
//! that jitter in when frames leave cannot squeeze four flashes into one.

/// The largest change that is not a flash: 10 % of 255 is 25.5.
pub const FLASH_STEP: u8 = 25;
/// Reversals are counted over this many seconds (1 s plus a margin).
pub const WINDOW_S: f64 = 1.1;
/// WCAG 2.3.1: no more than three flashes in any one second.
pub const MAX_FLASHES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trend {
    /// No change yet: the lowest and highest value seen.
    Flat { low: u8, high: u8 },
    /// Last change was a rise; `peak` is the highest value since.
    Rising { peak: u8 },
    /// Last change was a fall; `trough` is the lowest value since.
    Falling { trough: u8 },
}

#[derive(Debug, Clone)]
struct Channel {
    trend: Option<Trend>,
    /// Times of the last `MAX_FLASHES` reversals, oldest first.
    reversals: [f64; MAX_FLASHES],
    count: usize,
}

impl Channel {
    fn new() -> Self {
        Self {
            trend: None,
            reversals: [f64::NEG_INFINITY; MAX_FLASHES],
            count: 0,
        }
    }

    fn recent(&self, now_s: f64) -> usize {
        self.reversals[..self.count]
            .iter()
            .filter(|t| now_s - **t < WINDOW_S)
            .count()
    }

    fn record(&mut self, now_s: f64) {
        if self.count < MAX_FLASHES {
            self.reversals[self.count] = now_s;
            self.count += 1;
        } else {
            self.reversals.rotate_left(1);
            self.reversals[MAX_FLASHES - 1] = now_s;
        }
    }

    /// The value to send for `want` at `now_s`.
    fn limit(&mut self, want: u8, now_s: f64, max: usize) -> u8 {
        let Some(trend) = self.trend else {
            self.trend = Some(Trend::Flat {
                low: want,
                high: want,
            });
            return want;
        };
        let step = i16::from(FLASH_STEP);
        let w = i16::from(want);
        let (out, next) = match trend {
            // The first change completes no flash: always allowed.
            Trend::Flat { low, high } => {
                let (low, high) = (low.min(want), high.max(want));
                let next = if w - i16::from(low) > step {
                    Trend::Rising { peak: want }
                } else if i16::from(high) - w > step {
                    Trend::Falling { trough: want }
                } else {
                    Trend::Flat { low, high }
                };
                (want, next)
            }
            Trend::Rising { peak } => {
                if want >= peak {
                    (want, Trend::Rising { peak: want })
                } else if i16::from(peak) - w <= step {
                    (want, trend)
                } else if self.recent(now_s) < max {
                    self.record(now_s);
                    (want, Trend::Falling { trough: want })
                } else {
                    (peak - FLASH_STEP, trend)
                }
            }
            Trend::Falling { trough } => {
                if want <= trough {
                    (want, Trend::Falling { trough: want })
                } else if w - i16::from(trough) <= step {
                    (want, trend)
                } else if self.recent(now_s) < max {
                    self.record(now_s);
                    (want, Trend::Rising { peak: want })
                } else {
                    (trough + FLASH_STEP, trend)
                }
            }
        };
        self.trend = Some(next);
        out
    }
}

/// Per-channel flash limiting for a frame of channel values.
#[derive(Debug, Clone)]
pub struct Limiter {
    max: usize,
    channels: Vec<Channel>,
    /// Values changed by the limiter so far (for health and tests).
    held: u64,
}

impl Limiter {
    /// `channels` values per frame, at most `max_flashes_per_s` (1..=3) flashes each.
    pub fn new(channels: usize, max_flashes_per_s: usize) -> Self {
        Self {
            max: max_flashes_per_s.clamp(1, MAX_FLASHES),
            channels: vec![Channel::new(); channels],
            held: 0,
        }
    }

    /// Limits `frame` in place; `now_s` is a monotonic time in seconds.
    pub fn apply(&mut self, now_s: f64, frame: &mut [u8]) {
        for (value, channel) in frame.iter_mut().zip(&mut self.channels) {
            let out = channel.limit(*value, now_s, self.max);
            if out != *value {
                self.held += 1;
                *value = out;
            }
        }
    }

    /// Channel values the limiter has held back so far.
    pub fn held(&self) -> u64 {
        self.held
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An independent count of flashes in a sampled channel, written from the
    /// definition: walk the samples, find where each change of more than 10 %
    /// of full scale (25.5 of 255) away from the last turning point is
    /// confirmed; every confirmed change after the first completes a flash.
    /// Returns the largest number of flashes completed in any window of
    /// `window_s` (closed on both ends).
    pub(crate) fn max_flashes_in_window(samples: &[(f64, u8)], window_s: f64) -> usize {
        const TENTH: f64 = 25.5;
        let mut confirmed: Vec<f64> = Vec::new();
        let mut dir = 0i32; // 0 none yet, 1 rising, -1 falling
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for &(t, v) in samples {
            let v = f64::from(v);
            match dir {
                0 => {
                    lo = lo.min(v);
                    hi = hi.max(v);
                    if v - lo > TENTH {
                        dir = 1;
                        hi = v;
                    } else if hi - v > TENTH {
                        dir = -1;
                        lo = v;
                    }
                }
                1 => {
                    if v >= hi {
                        hi = v;
                    } else if hi - v > TENTH {
                        confirmed.push(t);
                        dir = -1;
                        lo = v;
                    }
                }
                _ => {
                    if v <= lo {
                        lo = v;
                    } else if v - lo > TENTH {
                        confirmed.push(t);
                        dir = 1;
                        hi = v;
                    }
                }
            }
        }
        let mut most = 0;
        for (i, t0) in confirmed.iter().enumerate() {
            let n = confirmed[i..]
                .iter()
                .take_while(|t| **t - t0 <= window_s + 1e-9)
                .count();
            most = most.max(n);
        }
        most
    }

    fn run(limiter: &mut Limiter, values: &[u8], dt: f64) -> Vec<(f64, u8)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = i as f64 * dt;
                let mut frame = [*v];
                limiter.apply(t, &mut frame);
                (t, frame[0])
            })
            .collect()
    }

    #[test]
    fn a_square_wave_at_10_hz_is_cut_to_three_flashes_a_second() {
        // 40 frames a second, full on/off every 2 frames: 10 flashes a second.
        let input: Vec<u8> = (0..400)
            .map(|i| if (i / 2) % 2 == 0 { 255 } else { 0 })
            .collect();
        assert!(
            max_flashes_in_window(
                &input
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64 / 40.0, *v))
                    .collect::<Vec<_>>(),
                1.0
            ) > 3
        );
        let mut l = Limiter::new(1, 3);
        let out = run(&mut l, &input, 1.0 / 40.0);
        assert!(max_flashes_in_window(&out, 1.0) <= 3);
        assert!(l.held() > 0);
        // and the light still moves: it is limited, not frozen
        let distinct: std::collections::BTreeSet<u8> = out.iter().map(|(_, v)| *v).collect();
        assert!(distinct.len() >= 2, "{distinct:?}");
    }

    #[test]
    fn slow_full_scale_fades_pass_unchanged() {
        // A 0.5 Hz triangle, 0..255: one flash a second at most.
        let input: Vec<u8> = (0..400)
            .map(|i| {
                let phase = (i % 80) as f32 / 80.0;
                let tri = if phase < 0.5 {
                    phase * 2.0
                } else {
                    2.0 - phase * 2.0
                };
                (tri * 255.0).round() as u8
            })
            .collect();
        let mut l = Limiter::new(1, 3);
        let out = run(&mut l, &input, 1.0 / 40.0);
        assert_eq!(out.iter().map(|(_, v)| *v).collect::<Vec<_>>(), input);
        assert_eq!(l.held(), 0);
    }

    #[test]
    fn a_cut_to_black_after_a_rise_is_allowed() {
        let mut l = Limiter::new(1, 3);
        let out = run(&mut l, &[0, 0, 255, 255, 0], 0.025);
        assert_eq!(out.last().unwrap().1, 0);
    }

    #[test]
    fn a_stricter_limit_of_one_flash_a_second_holds() {
        let input: Vec<u8> = (0..200)
            .map(|i| if (i / 3) % 2 == 0 { 200 } else { 10 })
            .collect();
        let mut l = Limiter::new(1, 1);
        let out = run(&mut l, &input, 0.025);
        assert!(max_flashes_in_window(&out, 1.0) <= 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any sequence of values at any frame rate from 10 to 200 Hz: never
        /// more than three flashes in any second, on every channel.
        #[test]
        fn no_input_makes_more_than_three_flashes_a_second(
            values in proptest::collection::vec(any::<u8>(), 1..600),
            hz in 10.0f64..200.0,
        ) {
            let mut l = Limiter::new(1, 3);
            let out = run(&mut l, &values, 1.0 / hz);
            prop_assert!(max_flashes_in_window(&out, 1.0) <= 3);
        }

        /// Irregular frame times (a loaded machine): still at most three.
        #[test]
        fn irregular_frame_times_still_hold(
            steps in proptest::collection::vec((any::<u8>(), 0.0f64..0.2), 1..600),
        ) {
            let mut l = Limiter::new(1, 3);
            let mut t = 0.0;
            let mut out = Vec::new();
            for (v, dt) in steps {
                t += dt;
                let mut f = [v];
                l.apply(t, &mut f);
                out.push((t, f[0]));
            }
            prop_assert!(max_flashes_in_window(&out, 1.0) <= 3);
        }

        /// Material that never reverses faster than the limit passes untouched.
        #[test]
        fn slow_material_is_not_touched(
            segments in proptest::collection::vec((any::<u8>(), 30usize..60), 1..20),
        ) {
            // Ramps between random levels, each at least 0.75 s long at 40 Hz: a
            // reversal is confirmed within the segment after its turning point,
            // so four confirmations span more than two segments (1.5 s).
            let mut input = Vec::new();
            let mut from = 0u8;
            for (to, n) in segments {
                for k in 1..=n {
                    let v = f32::from(from) + (f32::from(to) - f32::from(from)) * k as f32 / n as f32;
                    input.push(v.round() as u8);
                }
                from = to;
            }
            let mut l = Limiter::new(1, 3);
            let out = run(&mut l, &input, 0.025);
            prop_assert_eq!(out.iter().map(|(_, v)| *v).collect::<Vec<_>>(), input);
        }
    }
}
