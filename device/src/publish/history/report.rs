//! `earshotd report`: the history by the hour.

use earshot_protocol::Emotions;
use serde::Serialize;

use super::store::{value_names, Minute, N_VALUES};

const HOUR_MS: i64 = 3_600_000;

/// One hour of history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hour {
    /// Start of the hour, ms since the Unix epoch (UTC).
    pub start_ms: i64,
    pub readings: u32,
    /// Share of readings with music, 0..1.
    pub music_share: f32,
    /// The emotion with the highest mean over the music, if there was music.
    pub dominant: Option<&'static str>,
    /// Mean of each value over the music readings, by name (emotions, then mid-level).
    pub means: Option<Vec<(&'static str, f32)>>,
}

impl Hour {
    pub fn mean(&self, name: &str) -> Option<f32> {
        self.means
            .as_ref()?
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// Minutes grouped by UTC hour, means weighted by each minute's music readings.
pub fn hours(minutes: &[Minute]) -> Vec<Hour> {
    let mut out: Vec<Hour> = Vec::new();
    let mut sums = [0f64; N_VALUES];
    let mut music = 0u32;
    let flush = |out: &mut Vec<Hour>, sums: &mut [f64; N_VALUES], music: &mut u32| {
        if let Some(h) = out.last_mut() {
            h.music_share = *music as f32 / h.readings.max(1) as f32;
            if *music > 0 {
                let means: Vec<(&'static str, f32)> = value_names()
                    .zip(sums.iter())
                    .map(|(n, s)| (n, (*s / f64::from(*music)) as f32))
                    .collect();
                let emotions = Emotions::from_array(std::array::from_fn(|i| means[i].1));
                h.dominant = Some(emotions.dominant());
                h.means = Some(means);
            }
        }
        *sums = [0.0; N_VALUES];
        *music = 0;
    };
    for m in minutes {
        let start = m.start_ms - m.start_ms.rem_euclid(HOUR_MS);
        if out.last().is_none_or(|h| h.start_ms != start) {
            flush(&mut out, &mut sums, &mut music);
            out.push(Hour {
                start_ms: start,
                readings: 0,
                music_share: 0.0,
                dominant: None,
                means: None,
            });
        }
        if let Some(h) = out.last_mut() {
            h.readings += m.readings;
        }
        if let Some(v) = &m.values {
            for (s, (mean, _, _)) in sums.iter_mut().zip(v.iter()) {
                *s += f64::from(*mean) * f64::from(m.music);
            }
            music += m.music;
        }
    }
    flush(&mut out, &mut sums, &mut music);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(start_ms: i64, readings: u32, music: u32, valence: f32) -> Minute {
        let mut v = [(0.1f32, 0.0f32, 0.2f32); N_VALUES];
        v[0] = (valence, valence, valence);
        Minute {
            start_ms,
            readings,
            music,
            level_mean_dbfs: -30.0,
            values: (music > 0).then_some(v),
        }
    }

    #[test]
    fn hours_weight_minutes_by_their_music() {
        let h0 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;
        let hs = hours(&[
            minute(h0, 60, 60, 0.8),
            minute(h0 + 60_000, 60, 20, 0.4),
            minute(h0 + 120_000, 60, 0, 0.0),
            minute(h0 + HOUR_MS, 60, 30, 0.3),
        ]);
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].readings, 180);
        assert!((hs[0].music_share - 80.0 / 180.0).abs() < 1e-6);
        assert!((hs[0].mean("valence").unwrap() - 0.7).abs() < 1e-6);
        assert_eq!(hs[0].dominant, Some("valence"));
        assert_eq!(hs[1].start_ms, h0 + HOUR_MS);
        assert!((hs[1].mean("valence").unwrap() - 0.3).abs() < 1e-6);
        let silent = hours(&[minute(h0, 60, 0, 0.0)]);
        assert_eq!(
            (silent[0].dominant, silent[0].means.is_none()),
            (None, true)
        );
    }
}
