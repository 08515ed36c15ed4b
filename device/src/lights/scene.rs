//! The mapping from a reading to a look per zone, as data: scenes (a colour
//! per zone, chosen by the strongest of a few emotions) and per-zone curves
//! (brightness, saturation, UV from any emotion or mid-level value), with
//! three presets. Timing (smoothing, hold, crossfades) is the engine's job.

use earshot_protocol::{Emotions, MidLevel};

/// A colour at full brightness, each component 0..1 (sRGB-like, as DMX is).
pub type Rgb = [f32; 3];

/// What a curve reads: one emotion or one mid-level value of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Emotion(usize),
    MidLevel(usize),
}

impl Source {
    /// Parses an emotion or mid-level name ("energy", "dissonance").
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim();
        if let Some(i) = Emotions::<f32>::NAMES.iter().position(|n| *n == name) {
            return Some(Source::Emotion(i));
        }
        MidLevel::<f32>::NAMES
            .iter()
            .position(|n| *n == name)
            .map(Source::MidLevel)
    }

    /// Every name [`parse`](Self::parse) accepts, for error messages.
    pub fn names() -> String {
        Emotions::<f32>::NAMES
            .iter()
            .chain(MidLevel::<f32>::NAMES.iter())
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn name(self) -> &'static str {
        match self {
            Source::Emotion(i) => Emotions::<f32>::NAMES[i],
            Source::MidLevel(i) => MidLevel::<f32>::NAMES[i],
        }
    }

    pub fn value(self, values: &Values) -> f32 {
        match self {
            Source::Emotion(i) => values.emotions[i],
            Source::MidLevel(i) => values.mid_level[i],
        }
    }
}

/// The smoothed, published values of one music reading (copied, so that
/// handing a reading to the lights allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Values {
    pub emotions: [f32; 8],
    pub mid_level: [f32; 7],
}

/// `source` in `input` (low..high, reversed for a falling curve) to `output`,
/// shaped by `gamma` (above 1: slow start, fast finish).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Curve {
    pub source: Source,
    pub input: [f32; 2],
    pub output: [f32; 2],
    pub gamma: f32,
}

impl Curve {
    pub fn eval(&self, values: &Values) -> f32 {
        let x = self.source.value(values);
        let [a, b] = self.input;
        let t = if x.is_finite() {
            ((x - a) / (b - a)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let t = t.powf(self.gamma);
        (self.output[0] + (self.output[1] - self.output[0]) * t).clamp(0.0, 1.0)
    }
}

/// A colour gradient along one value (e.g. valence: cool to warm), mixed
/// into the scene's colour by `amount`, so a zone drifts within its scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    pub source: Source,
    /// The source's range that spans the gradient (reversed to run it backwards).
    pub input: [f32; 2],
    /// Two or more colours, evenly spaced.
    pub colours: Vec<Rgb>,
    /// 0: the scene's colour only; 1: the gradient's only.
    pub amount: f32,
}

impl Palette {
    /// Where `values` fall along the gradient, 0..1.
    pub fn position(&self, values: &Values) -> f32 {
        let x = self.source.value(values);
        let [a, b] = self.input;
        if x.is_finite() {
            ((x - a) / (b - a)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// The gradient's colour at `t` (0..1).
    pub fn colour_at(&self, t: f32) -> Rgb {
        let n = self.colours.len();
        if n < 2 {
            return self.colours.first().copied().unwrap_or([1.0; 3]);
        }
        let x = t.clamp(0.0, 1.0) * (n - 1) as f32;
        let i = (x.floor() as usize).min(n - 2);
        let f = x - i as f32;
        let (a, b) = (self.colours[i], self.colours[i + 1]);
        [
            a[0] + (b[0] - a[0]) * f,
            a[1] + (b[1] - a[1]) * f,
            a[2] + (b[2] - a[2]) * f,
        ]
    }
}

/// How one zone follows the music (its colour comes from the scene).
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneMap {
    pub name: String,
    pub brightness: Curve,
    /// `None`: the scene's colour alone.
    pub palette: Option<Palette>,
    /// `None`: the scene's colour as it is.
    pub saturation: Option<Curve>,
    /// `None`: UV emitters stay dark.
    pub uv: Option<Curve>,
}

/// A colour per zone, chosen while `when` is the strongest emotion of the scenes'.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub name: String,
    pub when: Source,
    /// One colour per zone, in the mapping's zone order.
    pub colours: Vec<Rgb>,
}

/// One colour and intensity for every zone (the idle and the safe look).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub colour: Rgb,
    pub intensity: f32,
}

impl Look {
    pub const BLACKOUT: Look = Look {
        colour: [0.0; 3],
        intensity: 0.0,
    };
}

/// Zones and scenes together.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub zones: Vec<ZoneMap>,
    pub scenes: Vec<Scene>,
}

impl Mapping {
    pub fn zone(&self, name: &str) -> Option<usize> {
        self.zones.iter().position(|z| z.name == name)
    }
}

/// Timing of a preset; each can be overridden in `[lights]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub attack_s: f32,
    pub release_s: f32,
    pub hold_s: f32,
    pub hysteresis: f32,
    pub crossfade_s: f32,
}

/// A starting point for a kind of room.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub timing: Timing,
    pub mapping: Mapping,
    pub idle: Look,
}

/// `#rrggbb` to a colour.
pub fn parse_colour(text: &str) -> Option<Rgb> {
    let hex = text.trim().strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([
        f32::from(byte(0)?) / 255.0,
        f32::from(byte(2)?) / 255.0,
        f32::from(byte(4)?) / 255.0,
    ])
}

/// A colour as `#rrggbb`.
pub fn format_colour(c: Rgb) -> String {
    let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", b(c[0]), b(c[1]), b(c[2]))
}

const fn hex(v: u32) -> Rgb {
    [
        ((v >> 16) & 0xff) as f32 / 255.0,
        ((v >> 8) & 0xff) as f32 / 255.0,
        (v & 0xff) as f32 / 255.0,
    ]
}

// Energy curves span 0.1..0.65: the model's energy for real music lies
// about there (0.19 for the calm demo passage, 0.55 for the tense one).

/// The four moods the model tells apart best (and the demo music shows).
const MOODS: [(&str, usize); 4] = [
    ("calm", 7),  // tender
    ("happy", 5), // happy
    ("tense", 2), // tension
    ("sad", 6),   // sad
];
const VALENCE: Source = Source::Emotion(0);
const ENERGY: Source = Source::Emotion(1);
const TENSION: Source = Source::Emotion(2);

fn curve(source: Source, input: [f32; 2], output: [f32; 2], gamma: f32) -> Curve {
    Curve {
        source,
        input,
        output,
        gamma,
    }
}

fn palette(source: Source, input: [f32; 2], colours: &[u32], amount: f32) -> Option<Palette> {
    Some(Palette {
        source,
        input,
        colours: colours.iter().map(|c| hex(*c)).collect(),
        amount,
    })
}

fn scenes(colours: [[u32; 2]; 4], zones: usize) -> Vec<Scene> {
    MOODS
        .iter()
        .zip(colours)
        .map(|((name, emotion), c)| Scene {
            name: (*name).into(),
            when: Source::Emotion(*emotion),
            colours: c[..zones].iter().map(|v| hex(*v)).collect(),
        })
        .collect()
}

/// The preset called `name`: `ambient_shop`, `bar` or `club`.
pub fn preset(name: &str) -> Option<Preset> {
    match name {
        // Shop lighting that must stay pleasant to work under: whites that
        // lean warm or cool, a narrow brightness range, slow and rare changes.
        "ambient_shop" => Some(Preset {
            timing: Timing {
                attack_s: 6.0,
                release_s: 10.0,
                hold_s: 30.0,
                hysteresis: 0.08,
                crossfade_s: 10.0,
            },
            mapping: Mapping {
                zones: vec![ZoneMap {
                    name: "room".into(),
                    brightness: curve(ENERGY, [0.15, 0.6], [0.5, 0.8], 1.0),
                    palette: palette(VALENCE, [0.3, 0.7], &[0xc8d8ff, 0xffc890], 0.35),
                    saturation: None,
                    uv: None,
                }],
                scenes: scenes(
                    [[0xffc58f, 0], [0xffe2b8, 0], [0xdce6ff, 0], [0xbfd0ff, 0]],
                    1,
                ),
            },
            idle: Look {
                colour: hex(0xffd2a6),
                intensity: 0.5,
            },
        }),
        // A wash that carries the mood's colour and an accent that follows
        // the energy more strongly; changes at the pace of songs.
        "bar" => Some(Preset {
            timing: Timing {
                attack_s: 2.5,
                release_s: 5.0,
                hold_s: 12.0,
                hysteresis: 0.06,
                crossfade_s: 4.0,
            },
            mapping: Mapping {
                zones: vec![
                    ZoneMap {
                        name: "wash".into(),
                        brightness: curve(ENERGY, [0.15, 0.6], [0.3, 0.85], 1.0),
                        palette: palette(VALENCE, [0.3, 0.7], &[0x6080ff, 0xffa040], 0.25),
                        saturation: Some(curve(ENERGY, [0.1, 0.6], [0.55, 1.0], 1.0)),
                        uv: None,
                    },
                    ZoneMap {
                        name: "accent".into(),
                        brightness: curve(ENERGY, [0.2, 0.6], [0.15, 1.0], 1.5),
                        palette: None,
                        saturation: None,
                        uv: None,
                    },
                ],
                scenes: scenes(
                    [
                        [0xff8c3c, 0xc04060],
                        [0xffb347, 0xff5fa0],
                        [0xb01830, 0x4020c0],
                        [0x2848b0, 0x7050c0],
                    ],
                    2,
                ),
            },
            idle: Look {
                colour: hex(0xff9040),
                intensity: 0.2,
            },
        }),
        // Saturated colours, energy drives intensity hard, tension lights UV.
        "club" => Some(Preset {
            timing: Timing {
                attack_s: 0.8,
                release_s: 2.5,
                hold_s: 6.0,
                hysteresis: 0.05,
                crossfade_s: 2.0,
            },
            mapping: Mapping {
                zones: vec![
                    ZoneMap {
                        name: "wash".into(),
                        brightness: curve(ENERGY, [0.1, 0.65], [0.2, 1.0], 1.3),
                        palette: None,
                        saturation: None,
                        uv: Some(curve(TENSION, [0.3, 0.8], [0.0, 1.0], 1.0)),
                    },
                    ZoneMap {
                        name: "accent".into(),
                        brightness: curve(ENERGY, [0.25, 0.65], [0.05, 1.0], 1.5),
                        palette: None,
                        saturation: None,
                        uv: None,
                    },
                ],
                scenes: scenes(
                    [
                        [0x3060ff, 0x00d0c0],
                        [0xff2080, 0xffb000],
                        [0xff0000, 0x8000ff],
                        [0x2000a0, 0x0080ff],
                    ],
                    2,
                ),
            },
            idle: Look {
                colour: hex(0x2000a0),
                intensity: 0.1,
            },
        }),
        _ => None,
    }
}

/// The preset names, for messages and docs.
pub const PRESETS: [&str; 3] = ["ambient_shop", "bar", "club"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_colours_parse() {
        assert_eq!(Source::parse("energy"), Some(Source::Emotion(1)));
        assert_eq!(Source::parse("minorness"), Some(Source::MidLevel(6)));
        assert_eq!(Source::parse("loudness"), None);
        assert_eq!(parse_colour("#ff8000"), Some([1.0, 128.0 / 255.0, 0.0]));
        assert_eq!(parse_colour("ff8000"), None);
        assert_eq!(parse_colour("#ff80"), None);
        assert_eq!(format_colour([1.0, 0.5, 0.0]), "#ff8000");
    }

    #[test]
    fn curves_clamp_reverse_and_shape() {
        let mut v = Values::default();
        let c = curve(ENERGY, [0.2, 0.6], [0.1, 0.9], 1.0);
        v.emotions[1] = 0.0;
        assert_eq!(c.eval(&v), 0.1);
        v.emotions[1] = 0.4;
        assert!((c.eval(&v) - 0.5).abs() < 1e-6);
        v.emotions[1] = 5.0;
        assert_eq!(c.eval(&v), 0.9);
        v.emotions[1] = f32::NAN;
        assert_eq!(c.eval(&v), 0.1);
        let falling = curve(ENERGY, [0.6, 0.2], [0.0, 1.0], 1.0);
        v.emotions[1] = 0.2;
        assert_eq!(falling.eval(&v), 1.0);
        let shaped = curve(ENERGY, [0.0, 1.0], [0.0, 1.0], 2.0);
        v.emotions[1] = 0.5;
        assert!((shaped.eval(&v) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn palettes_blend_evenly_spaced_colours() {
        let p = palette(VALENCE, [0.2, 0.6], &[0x000000, 0xff0000, 0xffffff], 1.0).unwrap();
        assert_eq!(p.colour_at(0.0), [0.0; 3]);
        assert_eq!(p.colour_at(0.5), [1.0, 0.0, 0.0]);
        assert_eq!(p.colour_at(0.75), [1.0, 0.5, 0.5]);
        assert_eq!(p.colour_at(2.0), [1.0; 3]);
        let mut v = Values::default();
        v.emotions[0] = 0.4;
        assert!((p.position(&v) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn every_preset_has_a_colour_per_zone_in_every_scene() {
        for name in PRESETS {
            let p = preset(name).unwrap();
            assert_eq!(p.mapping.scenes.len(), 4, "{name}");
            for s in &p.mapping.scenes {
                assert_eq!(s.colours.len(), p.mapping.zones.len(), "{name} {}", s.name);
            }
        }
        assert!(preset("disco").is_none());
    }
}
