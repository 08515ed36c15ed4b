//! The explanation and smoothing of published values.
//!
//! The model's last layer is exactly linear: `emotions = W · mid + b`. Writing
//! `mid = mean + (mid - mean)` splits every emotion into a bias (its value at
//! the training data's average mid-level features, `b + W · mean`) and seven
//! effects `W[e][m] * (mid[m] - mean[m])`. Smoothing is applied to the
//! mid-level values and the linear layer after it, so the published emotion is
//! *defined* as `bias + sum(effects)` of the smoothed values, the exact
//! identity the protocol promises ([`Explanation::total`]).

use earshot_protocol::{Analysis, Emotions, Explanation, MidLevel, Values};

/// Mid-level features.
pub const N_MID: usize = 7;
/// Emotions.
pub const N_EMO: usize = 8;

/// The linear mid-level -> emotion layer and the zero point of its effects.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub weight: [[f32; N_MID]; N_EMO],
    pub bias: [f32; N_EMO],
    pub mid_means: [f32; N_MID],
}

impl Linear {
    /// `W · mid + b`, the model's own emotion output for `mid`.
    pub fn emotions(&self, mid: &[f32; N_MID]) -> [f32; N_EMO] {
        let mut out = [0f32; N_EMO];
        for (e, o) in out.iter_mut().enumerate() {
            let dot: f64 = (0..N_MID)
                .map(|m| f64::from(self.weight[e][m]) * f64::from(mid[m]))
                .sum();
            *o = (dot + f64::from(self.bias[e])) as f32;
        }
        out
    }

    /// Per emotion: bias `b + W · mean` and effects `W * (mid - mean)`.
    pub fn explain(&self, mid: &[f32; N_MID]) -> [Explanation; N_EMO] {
        let mut out = [Explanation::default(); N_EMO];
        for (e, x) in out.iter_mut().enumerate() {
            let at_mean: f64 = (0..N_MID)
                .map(|m| f64::from(self.weight[e][m]) * f64::from(self.mid_means[m]))
                .sum();
            x.bias = (f64::from(self.bias[e]) + at_mean) as f32;
            let mut effects = [0f32; N_MID];
            for (m, eff) in effects.iter_mut().enumerate() {
                *eff = self.weight[e][m] * (mid[m] - self.mid_means[m]);
            }
            x.effects = MidLevel::from_array(effects);
        }
        out
    }
}

/// Smooths mid-level values over readings and builds the published analysis.
#[derive(Debug, Clone)]
pub struct Explainer {
    linear: Linear,
    /// EMA coefficient per reading, `1 - exp(-hop / tau)`; 1 = no smoothing.
    alpha: f32,
    smoothed: Option<[f32; N_MID]>,
}

impl Explainer {
    pub fn new(linear: Linear, hop_ms: f64, smoothing_ms: u32) -> Self {
        let alpha = if smoothing_ms == 0 {
            1.0
        } else {
            (1.0 - (-hop_ms / f64::from(smoothing_ms)).exp()) as f32
        };
        Self {
            linear,
            alpha,
            smoothed: None,
        }
    }

    pub fn linear(&self) -> &Linear {
        &self.linear
    }

    /// Forgets the smoothing state (after silence, so old music does not linger).
    pub fn reset(&mut self) {
        self.smoothed = None;
    }

    /// One window's raw mid-level values -> the published analysis.
    pub fn analyse(&mut self, raw_mid: [f32; N_MID]) -> Analysis {
        let smoothed = match self.smoothed {
            None => raw_mid,
            Some(prev) => {
                let mut s = prev;
                for (s, r) in s.iter_mut().zip(raw_mid) {
                    *s += self.alpha * (r - *s);
                }
                s
            }
        };
        self.smoothed = Some(smoothed);
        let explanation = self.linear.explain(&smoothed);
        let emotions = explanation.map(|x| x.total());
        Analysis {
            mid_level: MidLevel::from_array(smoothed),
            emotions: Emotions::from_array(emotions),
            explanation: Emotions::from_array(explanation),
            raw: Values {
                mid_level: MidLevel::from_array(raw_mid),
                emotions: Emotions::from_array(self.linear.emotions(&raw_mid)),
            },
            in_range: true,
            novelty: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear() -> Linear {
        let mut weight = [[0f32; N_MID]; N_EMO];
        for (e, row) in weight.iter_mut().enumerate() {
            for (m, w) in row.iter_mut().enumerate() {
                *w = ((e * 7 + m) as f32 * 0.37).sin() * 0.4;
            }
        }
        Linear {
            weight,
            bias: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            mid_means: [0.5, 0.45, 0.55, 0.5, 0.4, 0.6, 0.5],
        }
    }

    #[test]
    fn bias_plus_effects_is_the_emotion_exactly_and_near_the_linear_layer() {
        let mut x = Explainer::new(linear(), 1000.0, 3000);
        for step in 0..50 {
            let mid: [f32; N_MID] =
                std::array::from_fn(|m| ((step * 13 + m * 5) as f32 * 0.11).sin() * 0.5 + 0.5);
            let a = x.analyse(mid);
            let smoothed = a.mid_level.to_array();
            let direct = x.linear().emotions(&smoothed);
            for (e, (total, value)) in a
                .explanation
                .to_array()
                .iter()
                .map(Explanation::total)
                .zip(a.emotions.to_array())
                .enumerate()
            {
                assert_eq!(total, value, "emotion {e} at step {step}");
                assert!((value - direct[e]).abs() < 1e-6);
            }
            assert_eq!(a.raw.mid_level.to_array(), mid);
        }
    }

    #[test]
    fn smoothing_time_constant() {
        let mut x = Explainer::new(linear(), 1000.0, 1000);
        x.analyse([0.0; N_MID]);
        let a = x.analyse([1.0; N_MID]);
        let expect = 1.0 - (-1.0f32).exp();
        assert!((a.mid_level.melodiousness - expect).abs() < 1e-6);
        let mut none = Explainer::new(linear(), 1000.0, 0);
        none.analyse([0.0; N_MID]);
        assert_eq!(none.analyse([1.0; N_MID]).mid_level.minorness, 1.0);
        x.reset();
        assert_eq!(x.analyse([0.25; N_MID]).mid_level.articulation, 0.25);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Smoothing is a running mean: each published value stays within the
        /// range of the raw values seen since the last reset, and the
        /// explanation adds up to the emotion for any input.
        #[test]
        fn smoothing_stays_within_its_inputs(
            steps in proptest::collection::vec(proptest::array::uniform7(-0.5f32..1.5), 1..60),
            smoothing_ms in 0u32..20_000,
        ) {
            let mut x = Explainer::new(linear(), 990.0, smoothing_ms);
            let mut lo = [f32::INFINITY; N_MID];
            let mut hi = [f32::NEG_INFINITY; N_MID];
            for mid in steps {
                for m in 0..N_MID {
                    lo[m] = lo[m].min(mid[m]);
                    hi[m] = hi[m].max(mid[m]);
                }
                let a = x.analyse(mid);
                for (m, v) in a.mid_level.to_array().into_iter().enumerate() {
                    proptest::prop_assert!(v.is_finite());
                    proptest::prop_assert!(v >= lo[m] - 1e-6 && v <= hi[m] + 1e-6, "{v} not in {}..{}", lo[m], hi[m]);
                }
                for (total, value) in a.explanation.to_array().iter().map(Explanation::total).zip(a.emotions.to_array()) {
                    proptest::prop_assert_eq!(total, value);
                }
            }
        }
    }
}
