//! The lights as one of the daemon's sinks: `[lights]` checked with the
//! config's `file:line` errors, and a [`Sink`] whose `publish` only hands the
//! newest reading to the render thread and whose `close` ends in the safe look.

use std::sync::Arc;

use earshot_protocol::OutputState;

use super::output::{LinkState, LinkStatus};
use super::{LightsConfig, LightsError, LightsSettings};
use crate::config::{Check, ConfigError};
use crate::health::{Counters, OutputCounters};
use crate::publish::{PublishError, Published, Sink, SinkContext, SinkError};

impl LightsConfig {
    /// Checks `[lights]`; `None` when the lights are off.
    pub fn validate(&self, check: &Check) -> Result<Option<LightsSettings>, ConfigError> {
        self.validate_with(&|section, key, value, message| {
            check.invalid(section, key, value, message)
        })
    }
}

/// Each physical output ("lights:artnet", ...) in the health view.
impl LinkStatus for Arc<OutputCounters> {
    fn set_state(&self, state: LinkState) {
        OutputCounters::set_state(
            self,
            match state {
                LinkState::Ok => OutputState::Ok,
                LinkState::Retrying => OutputState::Retrying,
                LinkState::Down => OutputState::Down,
                LinkState::Closed => OutputState::Closed,
            },
        );
    }

    fn count_error(&self) {
        Counters::bump(&self.errors);
    }
}

/// The running lights, fed by the fan-out.
pub struct LightsSink {
    lights: super::Lights,
}

/// Starts the render thread and its outputs.
pub fn start(settings: &LightsSettings, ctx: &SinkContext) -> Result<Box<dyn Sink>, PublishError> {
    let settings = with_hop(settings, ctx.hello.hop_ms);
    let health = Arc::clone(ctx.health);
    let lights = super::start(&settings, &|name| Box::new(health.register_output(name)))
        .map_err(|e: LightsError| PublishError::Start(e.to_string()))?;
    Ok(Box::new(LightsSink { lights }))
}

/// A stall is only a stall once two readings are missing: with readings
/// slower than `stall_s` allows, it is raised (and said so).
fn with_hop(settings: &LightsSettings, hop_ms: u32) -> LightsSettings {
    let mut s = settings.clone();
    let least = 2.0 * hop_ms as f32 / 1000.0 + 0.5;
    if s.behaviour.stall_s < least {
        tracing::warn!(
            "lights: stall_s = {} is shorter than two readings ({hop_ms} ms apart); using {least} s",
            s.behaviour.stall_s
        );
        s.behaviour.stall_s = least;
    }
    s
}

impl Sink for LightsSink {
    fn name(&self) -> &'static str {
        "lights"
    }

    fn publish(&mut self, p: &Published) -> Result<(), SinkError> {
        self.lights.offer(&p.reading);
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.lights.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Loaded;
    use crate::publish::SinkSettings;
    use std::path::Path;

    #[test]
    fn the_loopback_example_validates_with_all_three_outputs() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/lights-loopback.toml");
        let s = Loaded::from_file(&path).unwrap().validate().unwrap();
        let lights = s
            .outputs
            .iter()
            .find_map(|o| match o {
                SinkSettings::Lights(l) => Some(l),
                _ => None,
            })
            .expect("lights on");
        assert_eq!(lights.artnet, Some("127.0.0.1:6454".parse().unwrap()));
        assert_eq!(
            lights.sacn.as_ref().unwrap().target,
            Some("127.0.0.1:5568".parse().unwrap())
        );
        assert_eq!(lights.wled[0].target, "127.0.0.1:21324".parse().unwrap());
    }

    #[test]
    fn stall_time_covers_two_readings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/lights-loopback.toml");
        let s = Loaded::from_file(&path).unwrap().validate().unwrap();
        let Some(SinkSettings::Lights(l)) = s
            .outputs
            .iter()
            .find(|o| matches!(o, SinkSettings::Lights(_)))
        else {
            panic!("lights on")
        };
        assert_eq!(super::with_hop(l, 990).behaviour.stall_s, 5.0);
        assert_eq!(super::with_hop(l, 5000).behaviour.stall_s, 10.5);
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let text = "[lights]\nenabled = true\npreset = \"disco\"\n";
        let err = Loaded::parse(text, "earshot.toml")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("earshot.toml:3:1: preset = \"disco\": not a preset"),
            "{err}"
        );
    }
}
