//! Input level and the music/silence gate. A hop below the threshold is
//! silence: the reading says so and claims no emotions. Hysteresis keeps the
//! state from flickering around the threshold.

/// Level reported for digital silence.
pub const FLOOR_DBFS: f32 = -120.0;
/// Music resumes only this far above the silence threshold.
pub const HYSTERESIS_DB: f32 = 3.0;

/// RMS level in dBFS of samples whose squares sum to `sum_sq`.
pub fn level_dbfs(sum_sq: f64, n: usize) -> f32 {
    if n == 0 || sum_sq <= 0.0 {
        return FLOOR_DBFS;
    }
    let db = 10.0 * (sum_sq / n as f64).log10();
    (db as f32).max(FLOOR_DBFS)
}

/// The gate's state machine.
#[derive(Debug, Clone)]
pub struct Gate {
    close_dbfs: f32,
    open_dbfs: f32,
    open: bool,
}

impl Gate {
    /// Closed (silence) until a hop reaches `silence_dbfs + HYSTERESIS_DB`.
    pub fn new(silence_dbfs: f32) -> Self {
        Self {
            close_dbfs: silence_dbfs,
            open_dbfs: silence_dbfs + HYSTERESIS_DB,
            open: false,
        }
    }

    /// Feeds one hop's level; returns whether the input is music.
    pub fn update(&mut self, level_dbfs: f32) -> bool {
        if self.open {
            self.open = level_dbfs >= self.close_dbfs;
        } else {
            self.open = level_dbfs >= self.open_dbfs;
        }
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_of_full_scale_sine_is_minus_3() {
        let n = 22050;
        let s: f64 = (0..n)
            .map(|i| {
                (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 22050.0)
                    .sin()
                    .powi(2)
            })
            .sum();
        assert!((level_dbfs(s, n) + 3.01).abs() < 0.01);
        assert_eq!(level_dbfs(0.0, n), FLOOR_DBFS);
        assert_eq!(level_dbfs(1.0, 0), FLOOR_DBFS);
    }

    #[test]
    fn hysteresis() {
        let mut g = Gate::new(-60.0);
        assert!(!g.update(-59.0)); // above threshold but below threshold + 3
        assert!(g.update(-56.0));
        assert!(g.update(-59.5)); // stays open until below the threshold
        assert!(!g.update(-61.0));
        assert!(!g.update(-58.0));
    }
}
