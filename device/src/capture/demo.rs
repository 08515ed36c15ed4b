//! The built-in demo: four excerpts of orchestral music from the game The
//! Battle for Wesnoth (GPL-2.0-or-later; credits in
//! `device/assets/demo/ATTRIBUTION.md`), chosen because the model reads them
//! as what they are: calm and tender, happy and bright, tense and dark, sad.
//! They are embedded as MP3 (mono, 22050 Hz, 64 kbit/s, as the model's
//! training clips were encoded; made by `scripts/make-demo-music.sh`),
//! decoded as they play by the file decoder and looped, so the demo needs no
//! files and holds one decoder's state, not the decoded audio. The log names
//! each passage as it starts.

use super::file::FileSource;
use super::{AudioSource, CaptureError, Read};
use crate::Shutdown;

/// One embedded excerpt.
#[derive(Debug)]
pub struct Passage {
    /// What the passage was chosen to show, as the log names it.
    pub mood: &'static str,
    pub title: &'static str,
    pub composer: &'static str,
    /// Where the excerpt starts in the original track, seconds.
    pub from_s: u32,
    /// File name under `device/assets/demo/`.
    pub file: &'static str,
    bytes: &'static [u8],
}

macro_rules! passage {
    ($mood:literal, $title:literal, $composer:literal, $from_s:literal, $file:literal) => {
        Passage {
            mood: $mood,
            title: $title,
            composer: $composer,
            from_s: $from_s,
            file: $file,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/", $file)),
        }
    };
}

/// The passages in playing order; `scripts/make-demo-music.sh` makes the files.
pub const PASSAGES: [Passage; 4] = [
    passage!(
        "calm, tender",
        "The Knolls of Doldesh",
        "Timothy Pinkham",
        39,
        "1-calm.mp3"
    ),
    passage!(
        "happy, bright",
        "Traveling Minstrels",
        "Mattias Westlund",
        127,
        "2-happy.mp3"
    ),
    passage!(
        "tense, dark",
        "Vengeful Pursuit",
        "Jeremy Nicoll",
        83,
        "3-tense.mp3"
    ),
    passage!("sad", "Weight of Revenge", "Doug Kaufman", 196, "4-sad.mp3"),
];

impl Passage {
    /// A decoder at the start of the passage.
    pub fn open(&self) -> Result<FileSource, CaptureError> {
        FileSource::from_bytes(&format!("<built-in>/demo/{}", self.file), self.bytes)
    }

    /// The whole passage, mono at the model rate.
    pub fn decode(&self) -> Result<Vec<f32>, CaptureError> {
        let mut src = self.open()?;
        let mut out = Vec::new();
        let never = Shutdown::new();
        while src.read(&mut out, &never)? == Read::Audio {}
        Ok(out)
    }

    /// Size of the embedded file in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
}

impl std::fmt::Display for Passage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: \"{}\" by {}", self.mood, self.title, self.composer)
    }
}

/// The demo source: the passages in order, looped.
pub struct Demo {
    index: usize,
    current: FileSource,
    loops: u64,
}

impl Demo {
    /// Starts at the first passage.
    pub fn open() -> Result<Self, CaptureError> {
        let first = &PASSAGES[0];
        let current = first.open()?;
        tracing::info!("demo: {first}");
        Ok(Self {
            index: 0,
            current,
            loops: 0,
        })
    }

    /// The passage playing now.
    pub fn passage(&self) -> &'static Passage {
        &PASSAGES[self.index]
    }

    /// Times the demo has started again from its first passage.
    pub fn loops(&self) -> u64 {
        self.loops
    }

    fn next_passage(&mut self) -> Result<(), CaptureError> {
        self.index = (self.index + 1) % PASSAGES.len();
        if self.index == 0 {
            self.loops += 1;
        }
        self.current = PASSAGES[self.index].open()?;
        tracing::info!("demo: {}", PASSAGES[self.index]);
        Ok(())
    }
}

impl AudioSource for Demo {
    fn label(&self) -> String {
        "demo".into()
    }

    fn read(&mut self, out: &mut Vec<f32>, shutdown: &Shutdown) -> Result<Read, CaptureError> {
        // A file source says `Audio` only when it appended samples; one full
        // round of passages without any would be empty embedded files.
        for _ in 0..=PASSAGES.len() {
            if self.current.read(out, shutdown)? == Read::Audio {
                return Ok(Read::Audio);
            }
            self.next_passage()?;
        }
        Ok(Read::End)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Precision, DEFAULT_HOP_MS, DEFAULT_SILENCE_DBFS};
    use crate::frontend::SAMPLE_RATE_HZ;
    use crate::gate::level_dbfs;
    use crate::health::Counters;
    use crate::pipeline::{Pipeline, PipelineSettings};
    use earshot_protocol::Emotions;
    use std::sync::Arc;

    const SR: f64 = SAMPLE_RATE_HZ as f64;

    fn level(x: &[f32]) -> f32 {
        level_dbfs(x.iter().map(|&v| f64::from(v * v)).sum(), x.len())
    }

    /// Decoding is exact and repeatable, so the demo's stream is the passages
    /// end to end, and after the last one the first begins again.
    #[test]
    fn the_demo_plays_60_to_90_s_of_music_in_order_and_loops() {
        let passages: Vec<Vec<f32>> = PASSAGES.iter().map(|p| p.decode().unwrap()).collect();
        let total: usize = passages.iter().map(Vec::len).sum();
        assert!(
            (60.0..=90.0).contains(&(total as f64 / SR)),
            "{} s",
            total as f64 / SR
        );
        let encoded: usize = PASSAGES.iter().map(Passage::encoded_len).sum();
        assert!(encoded < 1_000_000, "{encoded} bytes embedded");
        for (p, x) in PASSAGES.iter().zip(&passages) {
            let s = x.len() as f64 / SR;
            assert!((12.0..=30.0).contains(&s), "{p}: {s} s");
            assert!(x.iter().all(|v| v.is_finite() && v.abs() <= 1.0), "{p}");
            assert!(level(x) > -40.0, "{p}: {} dBFS", level(x));
            // faded in and out: no click at the cuts
            assert!(x[0].abs() < 1e-2 && x[x.len() - 1].abs() < 1e-2, "{p}");
        }

        let mut demo = Demo::open().unwrap();
        let never = Shutdown::new();
        let mut out = Vec::new();
        let mut seen = vec![demo.passage().file];
        while out.len() < total + 5 * SAMPLE_RATE_HZ as usize {
            assert_eq!(demo.read(&mut out, &never).unwrap(), Read::Audio);
            if seen.last() != Some(&demo.passage().file) {
                seen.push(demo.passage().file);
            }
        }
        let files: Vec<_> = PASSAGES.iter().map(|p| p.file).collect();
        assert_eq!(seen[..4], files[..], "passages play in order");
        assert_eq!(seen[4], files[0], "then the first again");
        assert_eq!(demo.loops(), 1);
        assert!(
            out[..total] == passages.concat()[..],
            "the passages, end to end"
        );
        let again = &out[total..total + 5 * SAMPLE_RATE_HZ as usize];
        assert!(again == &passages[0][..again.len()], "the loop restarts");
    }

    /// What a newcomer should see: the model, run on the demo the way the
    /// daemon runs it, reads each passage as the mood it was chosen for.
    #[test]
    fn the_model_reads_each_passage_as_its_mood() {
        let model = crate::load_model(None, Precision::F32).unwrap();
        let settings =
            PipelineSettings::new(&model, DEFAULT_HOP_MS, None, 0, DEFAULT_SILENCE_DBFS).unwrap();
        let mut pipeline = Pipeline::new(&model, settings, Arc::new(Counters::default())).unwrap();
        let lengths: Vec<u64> = PASSAGES
            .iter()
            .map(|p| p.decode().unwrap().len() as u64)
            .collect();
        let bounds_ms: Vec<(u64, u64)> = lengths
            .iter()
            .scan(0u64, |start, &n| {
                let b = (*start, *start + n);
                *start += n;
                Some(b)
            })
            .map(|(a, b)| {
                (
                    a * 1000 / SAMPLE_RATE_HZ as u64,
                    b * 1000 / SAMPLE_RATE_HZ as u64,
                )
            })
            .collect();
        let total: u64 = lengths.iter().sum();

        let mut demo = Demo::open().unwrap();
        let never = Shutdown::new();
        let mut sums = vec![[0f64; 8]; PASSAGES.len()];
        let mut counts = vec![0usize; PASSAGES.len()];
        let mut fed = 0u64;
        let mut buf = Vec::new();
        while fed < total {
            buf.clear();
            demo.read(&mut buf, &never).unwrap();
            fed += buf.len() as u64;
            pipeline
                .push(&buf, &mut |step| {
                    if !step.full_window {
                        return;
                    }
                    let end = step.reading.stream_ms;
                    let start = end.saturating_sub(10_000);
                    // readings whose whole window lies inside one passage
                    if let Some(i) = bounds_ms.iter().position(|&(a, b)| start >= a && end <= b) {
                        for (s, v) in sums[i].iter_mut().zip(step.model_emotions) {
                            *s += f64::from(v);
                        }
                        counts[i] += 1;
                    }
                })
                .unwrap();
        }
        let names = Emotions::<f32>::NAMES;
        let mean: Vec<[f32; 8]> = sums
            .iter()
            .zip(&counts)
            .map(|(s, &n)| std::array::from_fn(|k| (s[k] / n.max(1) as f64) as f32))
            .collect();
        for ((p, m), n) in PASSAGES.iter().zip(&mean).zip(&counts) {
            eprintln!(
                "{p}: {n} readings, {:?}",
                names.iter().zip(m).collect::<Vec<_>>()
            );
            assert!(*n >= 10, "{p}: only {n} readings lie inside the passage");
        }
        let at = |passage: usize, emotion: &str| {
            mean[passage][names.iter().position(|&e| e == emotion).unwrap()]
        };
        let (calm, happy, tense, sad) = (0, 1, 2, 3);
        // Each passage leads the others on the emotion it was chosen for ...
        for (p, emotion) in [
            (calm, "tender"),
            (happy, "happy"),
            (tense, "tension"),
            (sad, "sad"),
        ] {
            for other in (0..PASSAGES.len()).filter(|&o| o != p) {
                assert!(
                    at(p, emotion) > at(other, emotion) + 0.02,
                    "{emotion}: {} reads {:.2}, {} reads {:.2}",
                    PASSAGES[p].mood,
                    at(p, emotion),
                    PASSAGES[other].mood,
                    at(other, emotion)
                );
            }
        }
        // ... and the contrasts a newcomer sees are wide (edge-v4 shows about
        // twice these margins; numbers in device/assets/demo/ATTRIBUTION.md).
        for (a, b, emotion, margin) in [
            (tense, calm, "tension", 0.25),
            (tense, calm, "energy", 0.14),
            (calm, tense, "tender", 0.25),
            (happy, tense, "valence", 0.2),
            (happy, sad, "happy", 0.2),
            (sad, happy, "sad", 0.2),
        ] {
            assert!(
                at(a, emotion) > at(b, emotion) + margin,
                "{emotion}: {} reads {:.2}, {} reads {:.2}, expected a gap of {margin}",
                PASSAGES[a].mood,
                at(a, emotion),
                PASSAGES[b].mood,
                at(b, emotion)
            );
        }
    }
}
