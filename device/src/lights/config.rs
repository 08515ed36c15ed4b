//! `[lights]` in the config: the raw tables as written, and their checks into
//! [`LightsSettings`]. A preset gives scenes, zones, timing and the idle look;
//! any key written in `[lights]` overrides it. Units are in the names.

use std::net::SocketAddr;

use serde::Deserialize;

use super::engine::Behaviour;
use super::fixture::{profile, Component, Fixture, Place, PROFILES};
use super::output::wled::{Protocol, DRGB_MAX_LEDS};
use super::scene::{
    parse_colour, preset, Curve, Look, Mapping, Palette, Scene, Source, ZoneMap, PRESETS,
};

/// Default frames per second sent to the lights.
pub const DEFAULT_REFRESH_HZ: f32 = 40.0;

/// `[lights]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LightsConfig {
    pub enabled: bool,
    /// "ambient_shop", "bar" or "club".
    pub preset: String,
    /// Frames per second to every output (10..=60).
    pub refresh_hz: f32,
    /// Scales every music and idle intensity, 0..1.
    pub master: f32,
    pub attack_s: Option<f32>,
    pub release_s: Option<f32>,
    pub hold_s: Option<f32>,
    pub hysteresis: Option<f32>,
    pub crossfade_s: Option<f32>,
    /// Silence this long fades to the idle look.
    pub idle_after_s: f32,
    pub idle: Option<LookConfig>,
    /// Shown on shutdown, fatal errors and stalls; default blackout.
    pub safe: LookConfig,
    /// No reading for this long: the pipeline stalled (hold, then fade).
    pub stall_s: f32,
    pub stall_fade_s: f32,
    /// At most this many flashes a second on any channel (1..=3).
    pub max_flashes_per_s: u32,
    pub scenes: Vec<SceneConfig>,
    pub zones: Vec<ZoneConfig>,
    pub fixtures: Vec<FixtureConfig>,
    pub artnet: Option<ArtnetConfig>,
    pub sacn: Option<SacnConfig>,
    pub wled: Vec<WledConfig>,
    pub gpio: Vec<GpioConfig>,
}

impl Default for LightsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            preset: "bar".into(),
            refresh_hz: DEFAULT_REFRESH_HZ,
            master: 1.0,
            attack_s: None,
            release_s: None,
            hold_s: None,
            hysteresis: None,
            crossfade_s: None,
            idle_after_s: 5.0,
            idle: None,
            safe: LookConfig {
                color: "#000000".into(),
                intensity: 0.0,
            },
            stall_s: 5.0,
            stall_fade_s: 5.0,
            max_flashes_per_s: 3,
            scenes: Vec::new(),
            zones: Vec::new(),
            fixtures: Vec::new(),
            artnet: None,
            sacn: None,
            wled: Vec::new(),
            gpio: Vec::new(),
        }
    }
}

/// `{ color = "#rrggbb", intensity = 0.2 }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookConfig {
    pub color: String,
    pub intensity: f32,
}

/// `[[lights.scenes]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneConfig {
    pub name: String,
    /// The emotion (or mid-level value) that calls this scene when it leads.
    pub when: String,
    /// A colour per zone: `{ wash = "#ff8c3c", accent = "#c04060" }`.
    pub colors: std::collections::BTreeMap<String, String>,
}

/// `[[lights.zones]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    pub brightness: CurveConfig,
    pub palette: Option<PaletteConfig>,
    pub saturation: Option<CurveConfig>,
    pub uv: Option<CurveConfig>,
}

/// `{ from = "valence", in = [0.3, 0.7], colors = ["#6080ff", "#ffa040"], amount = 0.25 }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaletteConfig {
    pub from: String,
    #[serde(rename = "in", default = "unit")]
    pub input: [f32; 2],
    pub colors: Vec<String>,
    #[serde(default = "one")]
    pub amount: f32,
}

/// `{ from = "energy", in = [0.2, 0.8], out = [0.3, 1.0], gamma = 1.0 }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveConfig {
    pub from: String,
    #[serde(rename = "in", default = "unit")]
    pub input: [f32; 2],
    #[serde(rename = "out", default = "unit")]
    pub output: [f32; 2],
    #[serde(default = "one")]
    pub gamma: f32,
}

fn unit() -> [f32; 2] {
    [0.0, 1.0]
}

fn one() -> f32 {
    1.0
}

/// `[[lights.fixtures]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureConfig {
    pub name: String,
    /// A profile name, or leave out and list `channels`.
    pub profile: Option<String>,
    pub channels: Option<Vec<String>>,
    #[serde(default = "first_universe")]
    pub universe: u16,
    pub address: u16,
    pub zone: String,
    /// Copies of this fixture at consecutive addresses (a row of pars).
    #[serde(default = "one_count")]
    pub count: u16,
}

fn first_universe() -> u16 {
    1
}

fn one_count() -> u16 {
    1
}

/// `[lights.artnet]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtnetConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A node's address, or a broadcast address such as "2.255.255.255:6454".
    pub target: String,
}

/// `[lights.sacn]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SacnConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A receiver's address for unicast; leave out for multicast.
    pub target: Option<String>,
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default = "default_source_name")]
    pub source_name: String,
    #[serde(default = "one_ttl")]
    pub multicast_ttl: u32,
}

fn yes() -> bool {
    true
}

fn default_priority() -> u8 {
    100
}

fn default_source_name() -> String {
    "earshot".into()
}

fn one_ttl() -> u32 {
    1
}

/// `[[lights.wled]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WledConfig {
    pub target: String,
    pub zone: String,
    pub leds: usize,
    /// "drgb" (up to 490 LEDs) or "dnrgb".
    #[serde(default = "default_wled_protocol")]
    pub protocol: String,
    /// Seconds WLED waits after the last packet before resuming its own effect.
    #[serde(default = "default_wled_timeout")]
    pub timeout_s: u8,
}

fn default_wled_protocol() -> String {
    "drgb".into()
}

fn default_wled_timeout() -> u8 {
    2
}

/// `[[lights.gpio]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    /// BCM pin number.
    pub pin: u8,
    pub zone: String,
    /// Which part of the zone's look: "dimmer", "red", "white", ...
    pub channel: String,
    #[serde(default = "default_pwm_hz")]
    pub frequency_hz: f64,
}

fn default_pwm_hz() -> f64 {
    400.0
}

/// Validated lights settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LightsSettings {
    pub refresh_hz: f32,
    pub behaviour: Behaviour,
    pub mapping: Mapping,
    /// Every fixture: DMX ones, then one per WLED strip, then one per GPIO pin.
    pub fixtures: Vec<Fixture>,
    pub max_flashes_per_s: usize,
    pub artnet: Option<SocketAddr>,
    pub sacn: Option<SacnSettings>,
    pub wled: Vec<WledSettings>,
    pub gpio: Vec<GpioSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SacnSettings {
    /// `None`: multicast.
    pub target: Option<SocketAddr>,
    pub priority: u8,
    pub source_name: String,
    pub multicast_ttl: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WledSettings {
    pub target: SocketAddr,
    pub leds: usize,
    pub protocol: Protocol,
    pub timeout_s: u8,
    /// Its fixture in [`LightsSettings::fixtures`].
    pub fixture: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GpioSettings {
    pub pin: u8,
    pub frequency_hz: f64,
    pub fixture: usize,
}

/// Reports an invalid `[section] key = value` with a message.
pub type Invalid<'a, E> = &'a dyn Fn(&str, &'static str, String, String) -> E;
/// The same, with the message borrowed (inside validation).
type Bad<'a, E> = &'a dyn Fn(&str, &'static str, String, &str) -> E;
/// A zone's index by name, or the error naming the zones there are.
type ZoneOf<'a, E> = &'a dyn Fn(&str, &str) -> Result<usize, E>;

fn in_range(v: f32, lo: f32, hi: f32) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

fn address(text: &str, default_port: u16) -> Option<SocketAddr> {
    let t = text.trim();
    t.parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            t.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, default_port))
        })
        .filter(|a| a.port() != 0)
}

impl LightsConfig {
    /// Checks every value; `None` when the lights are off.
    pub fn validate_with<E>(&self, invalid: Invalid<E>) -> Result<Option<LightsSettings>, E> {
        if !self.enabled {
            return Ok(None);
        }
        let bad = |section: &str, key: &'static str, value: String, why: &str| {
            invalid(section, key, value, why.to_string())
        };
        let l = "lights";
        let Some(preset) = preset(self.preset.trim()) else {
            return Err(bad(
                l,
                "preset",
                format!("{:?}", self.preset),
                &format!("not a preset; use one of {}", PRESETS.join(", ")),
            ));
        };
        if !in_range(self.refresh_hz, 10.0, 60.0) {
            return Err(bad(
                l,
                "refresh_hz",
                self.refresh_hz.to_string(),
                "must be between 10 and 60 frames a second (40 is smooth and light on the network)",
            ));
        }
        if !in_range(self.master, 0.0, 1.0) {
            return Err(bad(
                l,
                "master",
                self.master.to_string(),
                "must be between 0 and 1",
            ));
        }
        let t = preset.timing;
        let secs = |key: &'static str, v: Option<f32>, default: f32, max: f32| -> Result<f32, E> {
            let v = v.unwrap_or(default);
            if in_range(v, 0.0, max) {
                Ok(v)
            } else {
                Err(bad(
                    l,
                    key,
                    v.to_string(),
                    &format!("must be between 0 and {max} seconds"),
                ))
            }
        };
        let attack_s = secs("attack_s", self.attack_s, t.attack_s, 600.0)?;
        let release_s = secs("release_s", self.release_s, t.release_s, 600.0)?;
        let hold_s = secs("hold_s", self.hold_s, t.hold_s, 3600.0)?;
        let crossfade_s = secs("crossfade_s", self.crossfade_s, t.crossfade_s, 600.0)?;
        let idle_after_s = secs("idle_after_s", Some(self.idle_after_s), 0.0, 3600.0)?;
        let stall_fade_s = secs("stall_fade_s", Some(self.stall_fade_s), 0.0, 600.0)?;
        let hysteresis = self.hysteresis.unwrap_or(t.hysteresis);
        if !in_range(hysteresis, 0.0, 1.0) {
            return Err(bad(l, "hysteresis", hysteresis.to_string(),
                "must be between 0 and 1 (how far, on the 0..1 emotion scale, another scene must lead)"));
        }
        if !in_range(self.stall_s, 1.5, 3600.0) {
            return Err(bad(
                l,
                "stall_s",
                self.stall_s.to_string(),
                "must be between 1.5 and 3600 seconds (readings come about once a second)",
            ));
        }
        if !(1..=3).contains(&self.max_flashes_per_s) {
            return Err(bad(
                l,
                "max_flashes_per_s",
                self.max_flashes_per_s.to_string(),
                "must be 1, 2 or 3: more than 3 flashes a second can trigger seizures (WCAG 2.3.1)",
            ));
        }
        let look = |key: &'static str, c: &LookConfig| -> Result<Look, E> {
            let colour = parse_colour(&c.color).ok_or_else(|| {
                bad(
                    l,
                    key,
                    format!("{:?}", c.color),
                    "the colour must be written \"#rrggbb\"",
                )
            })?;
            if !in_range(c.intensity, 0.0, 1.0) {
                return Err(bad(
                    l,
                    key,
                    c.intensity.to_string(),
                    "intensity must be between 0 and 1",
                ));
            }
            Ok(Look {
                colour,
                intensity: c.intensity,
            })
        };
        let idle = match &self.idle {
            Some(c) => look("idle", c)?,
            None => preset.idle,
        };
        let safe = look("safe", &self.safe)?;

        let mapping = self.mapping(preset.mapping, &bad)?;
        let zone = |section: &str, name: &str| -> Result<usize, E> {
            mapping.zone(name.trim()).ok_or_else(|| {
                let names: Vec<&str> = mapping.zones.iter().map(|z| z.name.as_str()).collect();
                bad(
                    section,
                    "zone",
                    format!("{name:?}"),
                    &format!("no such zone; this mapping has {}", names.join(", ")),
                )
            })
        };

        let mut fixtures = self.dmx_fixtures(&bad, &zone)?;

        let artnet = match &self.artnet {
            Some(a) if a.enabled => Some(
                address(&a.target, super::output::artnet::PORT).ok_or_else(|| {
                    bad(
                        "lights.artnet",
                        "target",
                        format!("{:?}", a.target),
                        "not an address like \"192.168.1.40:6454\"",
                    )
                })?,
            ),
            _ => None,
        };
        let sacn = match &self.sacn {
            Some(s) if s.enabled => {
                let target = match &s.target {
                    None => None,
                    Some(t) => {
                        Some(address(t, super::output::sacn::PORT).ok_or_else(|| {
                            bad("lights.sacn", "target", format!("{t:?}"),
                            "not an address like \"192.168.1.41:5568\" (leave out for multicast)")
                        })?)
                    }
                };
                if s.priority > 200 {
                    return Err(bad(
                        "lights.sacn",
                        "priority",
                        s.priority.to_string(),
                        "must be between 0 and 200 (100 is the usual)",
                    ));
                }
                Some(SacnSettings {
                    target,
                    priority: s.priority,
                    source_name: s.source_name.clone(),
                    multicast_ttl: s.multicast_ttl.clamp(1, 255),
                })
            }
            _ => None,
        };
        if (artnet.is_some() || sacn.is_some()) && fixtures.is_empty() {
            return Err(bad(l, "fixtures", "[]".into(),
                "Art-Net and sACN need fixtures: add [[lights.fixtures]] with a profile, universe, address and zone"));
        }

        let wled = self.strips(&bad, &zone, &mut fixtures)?;
        let gpio = self.pins(&bad, &zone, &mut fixtures)?;
        if artnet.is_none() && sacn.is_none() && wled.is_empty() && gpio.is_empty() {
            return Err(bad(l, "enabled", "true".into(),
                "no lighting output: add [lights.artnet], [lights.sacn], [[lights.wled]] or [[lights.gpio]]"));
        }

        Ok(Some(LightsSettings {
            refresh_hz: self.refresh_hz,
            behaviour: Behaviour {
                attack_s,
                release_s,
                hold_s,
                hysteresis,
                crossfade_s,
                master: self.master,
                idle_after_s,
                idle,
                safe,
                stall_s: self.stall_s,
                stall_fade_s,
            },
            mapping,
            fixtures,
            max_flashes_per_s: self.max_flashes_per_s as usize,
            artnet,
            sacn,
            wled,
            gpio,
        }))
    }

    /// `[[lights.fixtures]]`, each `count` times at consecutive addresses.
    fn dmx_fixtures<E>(&self, bad: Bad<E>, zone: ZoneOf<E>) -> Result<Vec<Fixture>, E> {
        let mut fixtures = Vec::new();
        let mut used: std::collections::BTreeMap<(u16, u16), String> = Default::default();
        let fx = "lights.fixtures";
        for f in &self.fixtures {
            let channels = match (&f.profile, &f.channels) {
                (Some(p), None) => profile(p).ok_or_else(|| {
                    bad(
                        fx,
                        "profile",
                        format!("{p:?}"),
                        &format!("not a profile; use one of {PROFILES}, or list channels = [...]"),
                    )
                })?,
                (None, Some(list)) if !list.is_empty() => list
                    .iter()
                    .map(|c| {
                        Component::parse(c).ok_or_else(|| {
                            bad(
                                fx,
                                "channels",
                                format!("{c:?}"),
                                &format!("not a channel; use {}", Component::NAMES),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, E>>()?,
                _ => {
                    return Err(bad(
                        fx,
                        "profile",
                        format!("{:?}", f.name),
                        &format!(
                    "fixture {:?}: give a profile ({PROFILES}) or a channels list, not both",
                    f.name
                ),
                    ))
                }
            };
            if !(1..=63999).contains(&f.universe) {
                return Err(bad(
                    fx,
                    "universe",
                    f.universe.to_string(),
                    "must be between 1 and 63999 (Art-Net sends universe 1 as 0)",
                ));
            }
            if f.count == 0 {
                return Err(bad(fx, "count", "0".into(), "must be at least 1"));
            }
            let zone = zone(fx, &f.zone)?;
            let n = channels.len() as u32;
            for k in 0..f.count {
                let start = u32::from(f.address) + u32::from(k) * n;
                if f.address == 0 || start + n - 1 > 512 {
                    return Err(bad(fx, "address", f.address.to_string(), &format!(
                    "fixture {:?} needs {} channels from this address: it must lie in 1..=512", f.name, n * u32::from(f.count))));
                }
                for a in start..start + n {
                    if let Some(other) = used.insert((f.universe, a as u16), f.name.clone()) {
                        return Err(bad(
                            fx,
                            "address",
                            f.address.to_string(),
                            &format!(
                                "fixture {:?} overlaps {other:?} at universe {} address {a}",
                                f.name, f.universe
                            ),
                        ));
                    }
                }
                let name = if f.count > 1 {
                    format!("{} {}", f.name, k + 1)
                } else {
                    f.name.clone()
                };
                fixtures.push(Fixture {
                    name,
                    zone,
                    channels: channels.clone(),
                    place: Place::Dmx {
                        universe: f.universe,
                        address: start as u16,
                    },
                });
            }
        }
        Ok(fixtures)
    }

    /// `[[lights.wled]]`: a strip each, and an RGB fixture for it.
    fn strips<E>(
        &self,
        bad: Bad<E>,
        zone: ZoneOf<E>,
        fixtures: &mut Vec<Fixture>,
    ) -> Result<Vec<WledSettings>, E> {
        let mut wled = Vec::new();
        for (i, w) in self.wled.iter().enumerate() {
            let s = "lights.wled";
            let target = address(&w.target, super::output::wled::PORT).ok_or_else(|| {
                bad(
                    s,
                    "target",
                    format!("{:?}", w.target),
                    "not an address like \"192.168.1.50:21324\"",
                )
            })?;
            let protocol = match w.protocol.trim() {
                "drgb" => Protocol::Drgb,
                "dnrgb" => Protocol::Dnrgb,
                other => {
                    return Err(bad(
                        s,
                        "protocol",
                        format!("{other:?}"),
                        "use \"drgb\" or \"dnrgb\"",
                    ))
                }
            };
            if w.leds == 0
                || w.leds > 10_000
                || (protocol == Protocol::Drgb && w.leds > DRGB_MAX_LEDS)
            {
                return Err(bad(s, "leds", w.leds.to_string(), &format!(
                "must be between 1 and {DRGB_MAX_LEDS} for drgb (use protocol = \"dnrgb\" for up to 10000)")));
            }
            if w.timeout_s == 0 {
                return Err(bad(
                    s,
                    "timeout_s",
                    "0".into(),
                    "must be 1..=255 seconds (255: WLED never takes over again)",
                ));
            }
            let zone = zone(s, &w.zone)?;
            wled.push(WledSettings {
                target,
                leds: w.leds,
                protocol,
                timeout_s: w.timeout_s,
                fixture: fixtures.len(),
            });
            fixtures.push(Fixture {
                name: format!("wled {}", i + 1),
                zone,
                channels: vec![Component::Red, Component::Green, Component::Blue],
                place: Place::Wled(i),
            });
        }
        Ok(wled)
    }

    /// `[[lights.gpio]]`: a pin each, and a one-channel fixture for it.
    fn pins<E>(
        &self,
        bad: Bad<E>,
        zone: ZoneOf<E>,
        fixtures: &mut Vec<Fixture>,
    ) -> Result<Vec<GpioSettings>, E> {
        let mut gpio = Vec::new();
        for (i, g) in self.gpio.iter().enumerate() {
            let s = "lights.gpio";
            if !cfg!(feature = "gpio") {
                return Err(bad(s, "pin", g.pin.to_string(),
                "this earshotd was built without GPIO support (cargo feature \"gpio\", on the Raspberry Pi builds)"));
            }
            if g.pin > 27 || gpio.iter().any(|p: &GpioSettings| p.pin == g.pin) {
                return Err(bad(
                    s,
                    "pin",
                    g.pin.to_string(),
                    "must be a BCM pin 0..=27, each used once",
                ));
            }
            if !(g.frequency_hz.is_finite() && (50.0..=10_000.0).contains(&g.frequency_hz)) {
                return Err(bad(
                    s,
                    "frequency_hz",
                    g.frequency_hz.to_string(),
                    "must be between 50 and 10000 Hz",
                ));
            }
            let channel = Component::parse(&g.channel).ok_or_else(|| {
                bad(
                    s,
                    "channel",
                    format!("{:?}", g.channel),
                    &format!("not a channel; use {}", Component::NAMES),
                )
            })?;
            let zone = zone(s, &g.zone)?;
            gpio.push(GpioSettings {
                pin: g.pin,
                frequency_hz: g.frequency_hz,
                fixture: fixtures.len(),
            });
            fixtures.push(Fixture {
                name: format!("gpio {}", g.pin),
                zone,
                channels: vec![channel],
                place: Place::Gpio(i),
            });
        }
        Ok(gpio)
    }

    /// The preset's mapping with the configured zones and scenes in its place.
    fn mapping<E>(
        &self,
        preset: Mapping,
        bad: &dyn Fn(&str, &'static str, String, &str) -> E,
    ) -> Result<Mapping, E> {
        let zones = if self.zones.is_empty() {
            preset.zones.clone()
        } else {
            let s = "lights.zones";
            let curve = |key: &'static str, c: &CurveConfig| -> Result<Curve, E> {
                let source = Source::parse(&c.from).ok_or_else(|| {
                    bad(
                        s,
                        key,
                        format!("{:?}", c.from),
                        &format!("`from` must name one of {}", Source::names()),
                    )
                })?;
                let ok = c.input.iter().chain(&c.output).all(|v| v.is_finite())
                    && c.input[0] != c.input[1]
                    && c.output.iter().all(|v| (0.0..=1.0).contains(v))
                    && c.gamma.is_finite()
                    && (0.1..=10.0).contains(&c.gamma);
                if !ok {
                    return Err(bad(s, key, format!("{:?} {:?} gamma {}", c.input, c.output, c.gamma),
                        "needs in = [a, b] with a != b, out within 0..1 and gamma between 0.1 and 10"));
                }
                Ok(Curve {
                    source,
                    input: c.input,
                    output: c.output,
                    gamma: c.gamma,
                })
            };
            let mut zones = Vec::new();
            for z in &self.zones {
                if z.name.trim().is_empty()
                    || zones.iter().any(|o: &ZoneMap| o.name == z.name.trim())
                {
                    return Err(bad(
                        s,
                        "name",
                        format!("{:?}", z.name),
                        "zone names must be unique and not empty",
                    ));
                }
                let palette = match &z.palette {
                    None => None,
                    Some(p) => {
                        let source = Source::parse(&p.from).ok_or_else(|| {
                            bad(
                                s,
                                "palette",
                                format!("{:?}", p.from),
                                &format!("`from` must name one of {}", Source::names()),
                            )
                        })?;
                        if !(2..=16).contains(&p.colors.len())
                            || p.input.iter().any(|v| !v.is_finite())
                            || p.input[0] == p.input[1]
                            || !(0.0..=1.0).contains(&p.amount)
                        {
                            return Err(bad(s, "palette", format!("{} colours, in {:?}, amount {}", p.colors.len(), p.input, p.amount),
                                "needs 2 to 16 colors, in = [a, b] with a != b and amount between 0 and 1"));
                        }
                        let colours = p
                            .colors
                            .iter()
                            .map(|c| {
                                parse_colour(c).ok_or_else(|| {
                                    bad(
                                        s,
                                        "palette",
                                        format!("{c:?}"),
                                        "colours are written \"#rrggbb\"",
                                    )
                                })
                            })
                            .collect::<Result<Vec<_>, E>>()?;
                        Some(Palette {
                            source,
                            input: p.input,
                            colours,
                            amount: p.amount,
                        })
                    }
                };
                zones.push(ZoneMap {
                    name: z.name.trim().to_string(),
                    brightness: curve("brightness", &z.brightness)?,
                    palette,
                    saturation: z
                        .saturation
                        .as_ref()
                        .map(|c| curve("saturation", c))
                        .transpose()?,
                    uv: z.uv.as_ref().map(|c| curve("uv", c)).transpose()?,
                });
            }
            zones
        };
        let scenes = if self.scenes.is_empty() {
            if !self.zones.is_empty() {
                return Err(bad("lights", "zones", format!("{} zones", self.zones.len()),
                    "zones of your own need scenes of your own: add [[lights.scenes]] with a colour per zone"));
            }
            preset.scenes
        } else {
            let s = "lights.scenes";
            let mut scenes = Vec::new();
            for sc in &self.scenes {
                let when = Source::parse(&sc.when).ok_or_else(|| {
                    bad(
                        s,
                        "when",
                        format!("{:?}", sc.when),
                        &format!("must name one of {}", Source::names()),
                    )
                })?;
                let mut colours = Vec::new();
                for z in &zones {
                    let text = sc.colors.get(&z.name).ok_or_else(|| {
                        bad(
                            s,
                            "colors",
                            format!("{:?}", sc.name),
                            &format!("scene {:?} has no colour for zone {:?}", sc.name, z.name),
                        )
                    })?;
                    colours.push(parse_colour(text).ok_or_else(|| {
                        bad(
                            s,
                            "colors",
                            format!("{text:?}"),
                            "colours are written \"#rrggbb\"",
                        )
                    })?);
                }
                if let Some(extra) = sc
                    .colors
                    .keys()
                    .find(|k| zones.iter().all(|z| &z.name != *k))
                {
                    return Err(bad(
                        s,
                        "colors",
                        format!("{extra:?}"),
                        &format!("scene {:?} names a zone that does not exist", sc.name),
                    ));
                }
                scenes.push(Scene {
                    name: sc.name.clone(),
                    when,
                    colours,
                });
            }
            scenes
        };
        Ok(Mapping { zones, scenes })
    }

    /// Checks without the daemon's config (tests, examples): errors as text.
    pub fn validate_text(&self) -> Result<Option<LightsSettings>, String> {
        self.validate_with(&|section, key, value, message| {
            format!("[{section}] {key} = {value}: {message}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> LightsConfig {
        #[derive(Deserialize)]
        struct Root {
            lights: LightsConfig,
        }
        toml::from_str::<Root>(text).unwrap().lights
    }

    const RIG: &str = r##"
[lights]
enabled = true
preset = "club"
[[lights.fixtures]]
name = "par"
profile = "rgbw"
universe = 2
address = 10
zone = "wash"
count = 3
[[lights.fixtures]]
name = "uv bar"
channels = ["dimmer", "uv", "off"]
address = 1
zone = "wash"
[lights.artnet]
target = "127.0.0.1"
[lights.sacn]
[[lights.wled]]
target = "127.0.0.1:21324"
zone = "accent"
leds = 30
"##;

    #[test]
    fn a_rig_validates_with_preset_timing_and_counted_fixtures() {
        let s = parse(RIG).validate_text().unwrap().unwrap();
        assert_eq!(s.behaviour.crossfade_s, 2.0, "club preset");
        assert_eq!(s.fixtures.len(), 5);
        assert_eq!(
            s.fixtures[2].place,
            Place::Dmx {
                universe: 2,
                address: 18
            }
        );
        assert_eq!(s.artnet, Some("127.0.0.1:6454".parse().unwrap()));
        assert_eq!(s.sacn.as_ref().unwrap().target, None, "multicast");
        assert_eq!(s.wled[0].fixture, 4);
        assert_eq!(s.fixtures[4].zone, 1);
    }

    #[test]
    fn disabled_is_none_and_errors_say_what_to_do() {
        assert!(LightsConfig::default().validate_text().unwrap().is_none());
        let err = |text: &str| parse(text).validate_text().unwrap_err();
        let e = err("[lights]\nenabled = true\npreset = \"disco\"\n");
        assert!(e.contains("ambient_shop, bar, club"), "{e}");
        let e = err(&RIG.replace("max_flashes", "x").replace(
            "preset = \"club\"",
            "preset = \"club\"\nmax_flashes_per_s = 5",
        ));
        assert!(e.contains("WCAG"), "{e}");
        let e = err(&RIG.replace("address = 1\n", "address = 11\nuniverse = 2\n"));
        assert!(e.contains("overlaps"), "{e}");
        let e = err(&RIG.replace("zone = \"accent\"", "zone = \"bar\""));
        assert!(
            e.contains("no such zone; this mapping has wash, accent"),
            "{e}"
        );
        let e = err(&RIG.replace("leds = 30", "leds = 600"));
        assert!(e.contains("dnrgb"), "{e}");
        let e = err("[lights]\nenabled = true\n");
        assert!(e.contains("no lighting output"), "{e}");
        let e = err(&RIG.replace("target = \"127.0.0.1\"\n", "target = \"127.0.0.1:0\"\n"));
        assert!(e.contains("[lights.artnet] target"), "{e}");
        let e = err(&RIG.replace("profile = \"rgbw\"", "profile = \"rgbx\""));
        assert!(e.contains("not a profile"), "{e}");
    }

    #[test]
    fn own_zones_and_scenes_replace_the_preset() {
        let text = r##"
[lights]
enabled = true
[[lights.zones]]
name = "ceiling"
brightness = { from = "energy", in = [0.2, 0.8], out = [0.2, 0.9] }
uv = { from = "dissonance" }
palette = { from = "valence", colors = ["#0000ff", "#ff8000", "#ffff00"], amount = 0.5 }
[[lights.scenes]]
name = "warm"
when = "valence"
colors = { ceiling = "#ff9000" }
[[lights.scenes]]
name = "cold"
when = "tension"
colors = { ceiling = "#0040ff" }
[[lights.wled]]
target = "127.0.0.1"
zone = "ceiling"
leds = 10
"##;
        let s = parse(text).validate_text().unwrap().unwrap();
        assert_eq!(s.mapping.zones.len(), 1);
        assert_eq!(s.mapping.zones[0].uv.unwrap().source, Source::MidLevel(4));
        let palette = s.mapping.zones[0].palette.as_ref().unwrap();
        assert_eq!((palette.colours.len(), palette.amount), (3, 0.5));
        let e = parse(&text.replace("amount = 0.5", "amount = 2.0"))
            .validate_text()
            .unwrap_err();
        assert!(e.contains("amount between 0 and 1"), "{e}");
        assert_eq!(s.mapping.scenes[1].when, Source::Emotion(2));
        let e = parse(&text.replace("ceiling = \"#0040ff\"", "floor = \"#0040ff\""))
            .validate_text()
            .unwrap_err();
        assert!(e.contains("no colour for zone \"ceiling\""), "{e}");
    }
}
