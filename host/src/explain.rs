//! Turns an [`Explanation`] into one plain sentence ("tension is high mainly
//! because of dissonance (+0.12) and minorness (+0.08)"), and names features
//! for people. Drawing the effects is left to `ui`.

use earshot_protocol::{Explanation, MidLevel};

/// Effects smaller than this are not worth naming.
const NEGLIGIBLE: f32 = 0.005;
/// Above this an emotion reads as "high".
pub const HIGH: f32 = 0.6;
/// Below this an emotion reads as "low".
pub const LOW: f32 = 0.4;

/// How strong an emotion reads, on the 0..1 scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degree {
    Low,
    Moderate,
    High,
}

impl Degree {
    pub fn of(value: f32) -> Self {
        if value > HIGH {
            Degree::High
        } else if value < LOW {
            Degree::Low
        } else {
            Degree::Moderate
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Degree::Low => "low",
            Degree::Moderate => "moderate",
            Degree::High => "high",
        }
    }
}

/// Feature name for sentences: `rhythm_stability` -> `rhythm stability`.
pub fn feature_name(name: &str) -> String {
    name.replace('_', " ")
}

/// Feature name in at most 13 columns, for tables and bars.
pub fn feature_label(name: &str) -> &str {
    match name {
        "melodiousness" => "melodiousness",
        "articulation" => "articulation",
        "rhythm_stability" => "rhythm stab.",
        "rhythm_complexity" => "rhythm compl.",
        "dissonance" => "dissonance",
        "tonal_stability" => "tonal stab.",
        "minorness" => "minorness",
        other => other,
    }
}

/// One sentence saying why `emotion` has `value`.
///
/// High values name the (up to) two largest positive effects, low values the two
/// largest negative ones, moderate values the two largest of either sign.
pub fn sentence(emotion: &str, value: f32, explanation: &Explanation) -> String {
    let degree = Degree::of(value);
    let mut effects: Vec<(&'static str, f32)> = explanation
        .effects
        .iter()
        .filter(|(_, e)| e.abs() >= NEGLIGIBLE)
        .filter(|(_, e)| match degree {
            Degree::High => *e > 0.0,
            Degree::Low => *e < 0.0,
            Degree::Moderate => true,
        })
        .collect();
    effects.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    effects.truncate(2);
    let named: Vec<String> = effects
        .iter()
        .map(|(name, e)| format!("{} ({e:+.2})", feature_name(name)))
        .collect();
    let word = degree.word();
    let bias = explanation.bias;
    match (degree, named.as_slice()) {
        (Degree::Moderate, []) => {
            format!("{emotion} is moderate, close to its baseline ({bias:.2})")
        }
        (Degree::Moderate, [a]) => format!("{emotion} is moderate; the main effect is {a}"),
        (Degree::Moderate, [a, b, ..]) => {
            format!("{emotion} is moderate; the main effects are {a} and {b}")
        }
        (_, []) => {
            let push = if degree == Degree::High { "up" } else { "down" };
            format!(
                "{emotion} is {word} from its baseline ({bias:.2}); no feature pushes it {push}"
            )
        }
        (_, [a]) => format!("{emotion} is {word} mainly because of {a}"),
        (_, [a, b, ..]) => format!("{emotion} is {word} mainly because of {a} and {b}"),
    }
}

/// The feature names in output order, for sentences and labels.
pub fn feature_names() -> [&'static str; 7] {
    MidLevel::<f32>::NAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expl(bias: f32, effects: [f32; 7]) -> Explanation {
        Explanation {
            bias,
            effects: MidLevel::from_array(effects),
        }
    }

    #[test]
    fn high_names_the_two_largest_positive_effects() {
        // melodiousness, articulation, rhythm_stability, rhythm_complexity, dissonance, tonal_stability, minorness
        let e = expl(0.5, [0.01, 0.0, -0.2, 0.0, 0.12, 0.0, 0.08]);
        assert_eq!(
            sentence("tension", 0.7, &e),
            "tension is high mainly because of dissonance (+0.12) and minorness (+0.08)"
        );
    }

    #[test]
    fn low_names_negative_effects_only() {
        let e = expl(0.4, [-0.02, 0.3, 0.0, 0.0, -0.05, -0.03, 0.0]);
        assert_eq!(
            sentence("tension", 0.3, &e),
            "tension is low mainly because of dissonance (-0.05) and tonal stability (-0.03)"
        );
    }

    #[test]
    fn moderate_names_either_sign() {
        let e = expl(0.5, [0.0, 0.0, 0.0, 0.0, 0.04, 0.0, -0.06]);
        assert_eq!(
            sentence("sad", 0.48, &e),
            "sad is moderate; the main effects are minorness (-0.06) and dissonance (+0.04)"
        );
    }

    #[test]
    fn single_and_missing_effects() {
        let e = expl(0.5, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.15]);
        assert_eq!(
            sentence("happy", 0.65, &e),
            "happy is high mainly because of minorness (+0.15)"
        );
        let e = expl(0.7, [0.0, 0.0, 0.0, 0.0, -0.03, 0.0, 0.001]);
        assert_eq!(
            sentence("energy", 0.67, &e),
            "energy is high from its baseline (0.70); no feature pushes it up"
        );
        let e = expl(0.45, [0.0; 7]);
        assert_eq!(
            sentence("tender", 0.45, &e),
            "tender is moderate, close to its baseline (0.45)"
        );
    }

    #[test]
    fn degree_thresholds() {
        assert_eq!(Degree::of(0.61), Degree::High);
        assert_eq!(Degree::of(0.6), Degree::Moderate);
        assert_eq!(Degree::of(0.4), Degree::Moderate);
        assert_eq!(Degree::of(0.39), Degree::Low);
    }

    #[test]
    fn labels_fit_thirteen_columns() {
        for name in feature_names() {
            assert!(feature_label(name).chars().count() <= 13, "{name}");
        }
    }
}
