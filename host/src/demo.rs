//! Deterministic synthetic readings: what a daemon might say, for tests and for
//! the documentation pictures. Values follow slow waves of `seq` and every
//! explanation is exact (`emotion = bias + sum(effects)`), like the daemon's.

use earshot_protocol::{
    Analysis, Emotions, Explanation, Health, Hello, InputState, Message, MidLevel, OutputHealth,
    OutputState, Reading, Values,
};

/// Hop of the synthetic stream, as the hello states it.
pub const HOP_MS: u32 = 1000;
pub const MODEL_ID: &str = "edge-1a2b3c4d";
const BANDS: usize = 16;
const MEAN: f32 = 0.5;

/// Per emotion: bias, then the weight of each mid-level feature
/// (melodiousness, articulation, rhythm stab., rhythm compl., dissonance, tonal stab., minorness).
const WEIGHTS: [(f32, [f32; 7]); 8] = [
    (0.50, [0.25, 0.0, 0.05, 0.0, -0.2, 0.1, -0.3]), // valence
    (0.45, [0.0, 0.35, 0.1, 0.25, 0.1, 0.0, 0.0]),   // energy
    (0.40, [-0.15, 0.1, 0.0, 0.05, 0.4, -0.15, 0.1]), // tension
    (0.25, [-0.1, 0.2, 0.0, 0.0, 0.25, 0.0, 0.0]),   // anger
    (0.30, [-0.1, 0.0, -0.1, 0.0, 0.25, -0.1, 0.1]), // fear
    (0.45, [0.2, 0.1, 0.05, 0.0, -0.15, 0.0, -0.35]), // happy
    (0.30, [0.1, -0.2, 0.0, 0.0, 0.0, 0.0, 0.35]),   // sad
    (0.40, [0.3, -0.25, 0.0, -0.1, -0.1, 0.0, 0.05]), // tender
];

pub fn hello() -> Message {
    Message::Hello(Hello {
        daemon: "0.1.0".into(),
        model_id: MODEL_ID.into(),
        source: "demo".into(),
        hop_ms: HOP_MS,
        window_ms: 10_000,
        smoothing_ms: 3000,
        mid_level_means: MidLevel::from_array([MEAN; 7]),
    })
}

fn wave(seq: u64, period: f32, phase: f32) -> f32 {
    let x = seq as f32 / period * std::f32::consts::TAU + phase;
    0.5 + 0.4 * x.sin()
}

/// The mid-level values at `seq`, each in 0.1..0.9.
pub fn mid_level(seq: u64) -> [f32; 7] {
    std::array::from_fn(|i| wave(seq, 20.0 + 7.0 * i as f32, i as f32 * 1.3))
}

/// A music reading with an exact explanation.
pub fn reading(seq: u64) -> Reading {
    let mid = mid_level(seq);
    let explanation: [Explanation; 8] = std::array::from_fn(|e| {
        let (bias, w) = WEIGHTS[e];
        Explanation {
            bias,
            effects: MidLevel::from_array(std::array::from_fn(|f| w[f] * (mid[f] - MEAN))),
        }
    });
    let emotions = Emotions::from_array(explanation.map(|x| x.total()));
    let mid_level = MidLevel::from_array(mid);
    let loud = wave(seq, 11.0, 0.0);
    Reading {
        seq,
        time_ms: 1_764_000_000_000 + seq * u64::from(HOP_MS),
        stream_ms: 10_000 + seq * u64::from(HOP_MS),
        model_id: MODEL_ID.into(),
        state: InputState::Music,
        level_dbfs: -30.0 + 20.0 * loud,
        spectrum: (0..BANDS)
            .map(|b| {
                let tilt = 1.0 - b as f32 / BANDS as f32 * 0.7;
                (tilt * wave(seq + b as u64 * 2, 13.0 + b as f32, b as f32 * 0.7)).clamp(0.0, 1.0)
            })
            .collect(),
        analysis: Some(Analysis {
            mid_level,
            emotions,
            explanation: Emotions::from_array(explanation),
            raw: Values {
                mid_level,
                emotions,
            },
            in_range: true,
            novelty: Some(0.7),
        }),
        latency_ms: 1.2 + 0.6 * wave(seq, 5.0, 0.5),
        health: Health {
            uptime_s: 10 + seq * u64::from(HOP_MS) / 1000,
            dropped_frames: seq / 40,
            xruns: seq / 90,
            reconnects: 0,
            dropped_readings: 0,
            clients: 1,
            input: Default::default(),
            outputs: vec![
                output("server", OutputState::Ok, 0),
                output("mqtt", OutputState::Ok, 0),
                output("lights:artnet", OutputState::Ok, 0),
            ],
        },
    }
}

fn output(name: &str, state: OutputState, errors: u64) -> OutputHealth {
    OutputHealth {
        name: name.into(),
        state,
        errors,
        dropped: 0,
    }
}

/// A silence reading: no analysis, a quiet level and an empty spectrum.
pub fn silence(seq: u64) -> Reading {
    Reading {
        state: InputState::Silence,
        level_dbfs: -71.0,
        spectrum: vec![0.0; BANDS],
        analysis: None,
        latency_ms: 0.0,
        ..reading(seq)
    }
}

pub fn reading_message(seq: u64) -> Message {
    Message::Reading(Box::new(reading(seq)))
}

pub fn silence_message(seq: u64) -> Message {
    Message::Reading(Box::new(silence(seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_are_exact_and_values_in_range() {
        for seq in 0..200 {
            let r = reading(seq);
            let a = r.analysis.expect("music");
            for (e, x) in a.emotions.to_array().iter().zip(a.explanation.to_array()) {
                assert!((x.total() - e).abs() < 1e-6);
                assert!((0.0..=1.0).contains(e), "{e}");
            }
        }
    }
}
