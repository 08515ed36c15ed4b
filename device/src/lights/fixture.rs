//! Fixtures: what each light's channels mean (its profile), where it sits
//! (a DMX universe and address, a WLED strip, a GPIO pin) and which zone it
//! shows. A [`Rig`] renders every fixture's channels into one flat frame,
//! which the limiter then guards channel by channel.

use super::engine::ZoneLook;

/// What one channel of a fixture does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Dimmer,
    Red,
    Green,
    Blue,
    White,
    Amber,
    Uv,
    /// Held at 0 (e.g. a strobe or macro channel that must stay off).
    Off,
    /// Held at full (e.g. a fixture's own master that must be open).
    Full,
}

impl Component {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "dimmer" => Component::Dimmer,
            "red" => Component::Red,
            "green" => Component::Green,
            "blue" => Component::Blue,
            "white" => Component::White,
            "amber" => Component::Amber,
            "uv" => Component::Uv,
            "off" => Component::Off,
            "full" => Component::Full,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Component::Dimmer => "dimmer",
            Component::Red => "red",
            Component::Green => "green",
            Component::Blue => "blue",
            Component::White => "white",
            Component::Amber => "amber",
            Component::Uv => "uv",
            Component::Off => "off",
            Component::Full => "full",
        }
    }

    pub const NAMES: &'static str = "dimmer, red, green, blue, white, amber, uv, off, full";
}

/// The channel layouts of common fixtures, by profile name.
pub fn profile(name: &str) -> Option<Vec<Component>> {
    use Component::*;
    Some(match name.trim() {
        "dimmer" => vec![Dimmer],
        "rgb" => vec![Red, Green, Blue],
        "drgb" => vec![Dimmer, Red, Green, Blue],
        "rgbw" => vec![Red, Green, Blue, White],
        "drgbw" => vec![Dimmer, Red, Green, Blue, White],
        "rgbwa" => vec![Red, Green, Blue, White, Amber],
        "rgbwauv" => vec![Red, Green, Blue, White, Amber, Uv],
        "drgbwauv" => vec![Dimmer, Red, Green, Blue, White, Amber, Uv],
        _ => return None,
    })
}

pub const PROFILES: &str = "dimmer, rgb, drgb, rgbw, drgbw, rgbwa, rgbwauv, drgbwauv";

/// Where a fixture's channels go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// DMX512: universe (1-based, as sACN counts) and 1-based start address.
    Dmx { universe: u16, address: u16 },
    /// The n-th `[[lights.wled]]` strip.
    Wled(usize),
    /// The n-th `[[lights.gpio]]` pin.
    Gpio(usize),
}

/// One light (or strip, or pin).
#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    pub name: String,
    pub zone: usize,
    pub channels: Vec<Component>,
    pub place: Place,
}

/// The amber emitter's colour in RGB terms (a deep yellow-orange).
const AMBER_GREEN: f32 = 0.5;

impl Fixture {
    /// Writes this fixture's channel values for `look` into `out`.
    ///
    /// Without a dimmer channel, colour channels carry the intensity; with
    /// one, they carry the colour and the dimmer the intensity. A white
    /// emitter takes the common part of red, green and blue, an amber one the
    /// orange part of what is left, so mixed fixtures show the same colour.
    pub fn render(&self, look: &ZoneLook, out: &mut [u8]) {
        let has = |c: Component| self.channels.contains(&c);
        let intensity = look.intensity.clamp(0.0, 1.0);
        let scale = if has(Component::Dimmer) {
            1.0
        } else {
            intensity
        };
        let [mut r, mut g, mut b] = look.colour.map(|c| c.clamp(0.0, 1.0) * scale);
        let mut w = 0.0;
        if has(Component::White) {
            w = r.min(g).min(b);
            r -= w;
            g -= w;
            b -= w;
        }
        let mut a = 0.0;
        if has(Component::Amber) {
            a = r.min(g / AMBER_GREEN);
            r -= a;
            g -= a * AMBER_GREEN;
        }
        // UV follows its own curve, not the zone's intensity.
        let uv = look.uv;
        let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        for (slot, c) in out.iter_mut().zip(&self.channels) {
            *slot = match c {
                Component::Dimmer => byte(intensity),
                Component::Red => byte(r),
                Component::Green => byte(g),
                Component::Blue => byte(b),
                Component::White => byte(w),
                Component::Amber => byte(a),
                Component::Uv => byte(uv),
                Component::Off => 0,
                Component::Full => 255,
            };
        }
    }
}

/// Every fixture, and where its channels lie in the frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Rig {
    pub fixtures: Vec<Fixture>,
    offsets: Vec<usize>,
    len: usize,
}

impl Rig {
    pub fn new(fixtures: Vec<Fixture>) -> Self {
        let mut offsets = Vec::with_capacity(fixtures.len());
        let mut len = 0;
        for f in &fixtures {
            offsets.push(len);
            len += f.channels.len();
        }
        Self {
            fixtures,
            offsets,
            len,
        }
    }

    /// Channel values in a frame.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fixture `i`'s channels within a frame.
    pub fn channels<'a>(&self, i: usize, frame: &'a [u8]) -> &'a [u8] {
        let start = self.offsets[i];
        &frame[start..start + self.fixtures[i].channels.len()]
    }

    /// Where fixture `i` starts in a frame.
    pub fn offset(&self, i: usize) -> usize {
        self.offsets[i]
    }

    /// Renders every fixture from its zone's look.
    pub fn render(&self, looks: &[ZoneLook], frame: &mut [u8]) {
        for (f, start) in self.fixtures.iter().zip(&self.offsets) {
            let look = looks.get(f.zone).copied().unwrap_or_default();
            f.render(&look, &mut frame[*start..*start + f.channels.len()]);
        }
    }

    /// Renders one look on every zone.
    pub fn render_all(&self, look: &ZoneLook, frame: &mut [u8]) {
        for (f, start) in self.fixtures.iter().zip(&self.offsets) {
            f.render(look, &mut frame[*start..*start + f.channels.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(profile_name: &str) -> Fixture {
        Fixture {
            name: "f".into(),
            zone: 0,
            channels: profile(profile_name).unwrap(),
            place: Place::Dmx {
                universe: 1,
                address: 1,
            },
        }
    }

    fn render(profile_name: &str, colour: [f32; 3], intensity: f32) -> Vec<u8> {
        let f = fixture(profile_name);
        let mut out = vec![0; f.channels.len()];
        f.render(
            &ZoneLook {
                colour,
                intensity,
                uv: 0.0,
            },
            &mut out,
        );
        out
    }

    #[test]
    fn profiles_split_colour_into_their_emitters() {
        assert_eq!(render("dimmer", [1.0, 0.0, 0.0], 0.5), [128]);
        assert_eq!(render("rgb", [1.0, 0.5, 0.0], 1.0), [255, 128, 0]);
        assert_eq!(render("rgb", [1.0, 0.5, 0.0], 0.5), [128, 64, 0]);
        assert_eq!(render("drgb", [1.0, 0.5, 0.0], 0.5), [128, 255, 128, 0]);
        // warm white: white takes the common part
        assert_eq!(render("rgbw", [1.0, 0.8, 0.6], 1.0), [102, 51, 0, 153]);
        // orange on RGBWA: amber takes red with half as much green
        assert_eq!(render("rgbwa", [1.0, 0.5, 0.0], 1.0), [0, 0, 0, 0, 255]);
        assert_eq!(render("rgbwauv", [0.0, 0.0, 0.0], 0.0), [0; 6]);
    }

    #[test]
    fn fixed_channels_and_rig_layout() {
        let mut f = fixture("rgb");
        f.channels.push(Component::Off);
        f.channels.push(Component::Full);
        let rig = Rig::new(vec![fixture("dimmer"), f]);
        assert_eq!(rig.len(), 6);
        let mut frame = vec![0; rig.len()];
        let look = ZoneLook {
            colour: [0.0, 0.0, 1.0],
            intensity: 1.0,
            uv: 0.0,
        };
        rig.render(&[look], &mut frame);
        assert_eq!(frame, [255, 0, 0, 255, 0, 255]);
        assert_eq!(rig.channels(1, &frame), [0, 0, 255, 0, 255]);
    }
}
