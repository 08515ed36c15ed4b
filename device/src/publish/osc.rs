//! OSC over UDP (rosc), for lighting desks, QLab, TouchDesigner: each reading
//! as a handful of messages with documented addresses (docs/osc.md), e.g.
//! `/earshot/emotion/valence f`. UDP never waits; a send that fails (nobody
//! listening yet) skips that reading for that target.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

use earshot_protocol::{InputState, Reading};
use rosc::{encoder, OscBundle, OscMessage, OscPacket, OscTime, OscType};
use serde::Deserialize;

use super::{PublishError, Published, Sink, SinkError, SinkSettings};
use crate::config::{Check, ConfigError};

/// `[osc]` in the config (and `--osc HOST:PORT`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OscConfig {
    /// Where to send, e.g. ["192.168.1.20:8000"]; empty: no OSC.
    pub targets: Vec<String>,
    /// First part of every address.
    pub prefix: String,
    /// Send each reading as one bundle instead of separate messages (some
    /// receivers only take plain messages).
    pub bundle: bool,
    /// Also send the 56 explanation terms, `/earshot/explain/<emotion>/<feature> f`.
    pub explanation: bool,
}

impl Default for OscConfig {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            prefix: "/earshot".into(),
            bundle: false,
            explanation: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OscSettings {
    pub targets: Vec<SocketAddr>,
    pub prefix: String,
    pub bundle: bool,
    pub explanation: bool,
}

impl OscConfig {
    pub fn validate(&self, check: &Check) -> Result<Option<SinkSettings>, ConfigError> {
        if self.targets.is_empty() {
            return Ok(None);
        }
        let mut targets = Vec::new();
        for t in &self.targets {
            // names resolve once, here: a reading must never wait on DNS
            let addr = t.to_socket_addrs().ok().and_then(|mut a| a.next());
            targets.push(addr.ok_or_else(|| {
                check.invalid(
                    "osc",
                    "targets",
                    format!("{t:?}"),
                    "not a reachable HOST:PORT, e.g. \"192.168.1.20:8000\"",
                )
            })?);
        }
        let p = &self.prefix;
        if !p.starts_with('/') || p.ends_with('/') || p.contains([' ', '#', '*', '?', ',']) {
            return Err(check.invalid(
                "osc",
                "prefix",
                format!("{p:?}"),
                "an OSC address like \"/earshot\" (no trailing '/', spaces or wildcards)",
            ));
        }
        Ok(Some(SinkSettings::Osc(OscSettings {
            targets,
            prefix: p.clone(),
            bundle: self.bundle,
            explanation: self.explanation,
        })))
    }
}

pub struct OscSink {
    socket: UdpSocket,
    settings: OscSettings,
}

impl OscSink {
    pub fn start(settings: &OscSettings) -> Result<Self, PublishError> {
        let any: SocketAddr = if settings.targets.iter().all(|t| t.is_ipv6()) {
            "[::]:0".parse()
        } else {
            "0.0.0.0:0".parse()
        }
        .map_err(|e| PublishError::Start(format!("osc: {e}")))?;
        let socket = UdpSocket::bind(any)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| PublishError::Start(format!("osc: cannot open a UDP socket: {e}")))?;
        let list: Vec<String> = settings.targets.iter().map(|t| t.to_string()).collect();
        tracing::info!("osc: sending readings to {}", list.join(", "));
        Ok(Self {
            socket,
            settings: settings.clone(),
        })
    }
}

fn msg(addr: String, arg: OscType) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr,
        args: vec![arg],
    })
}

/// The messages for one reading, in a fixed order.
pub fn messages(s: &OscSettings, r: &Reading) -> Vec<OscPacket> {
    let p = &s.prefix;
    let mut out = vec![
        // OSC ints are 32-bit; the sequence wraps there, which a receiver can see
        msg(format!("{p}/seq"), OscType::Int(r.seq as u32 as i32)),
        msg(format!("{p}/state"), OscType::String(state_name(r.state))),
        msg(
            format!("{p}/music"),
            OscType::Int(i32::from(r.state == InputState::Music)),
        ),
        msg(format!("{p}/level"), OscType::Float(r.level_dbfs)),
    ];
    if let Some(a) = &r.analysis {
        out.push(msg(
            format!("{p}/in_range"),
            OscType::Int(i32::from(a.in_range)),
        ));
        for (name, v) in a.emotions.iter() {
            out.push(msg(format!("{p}/emotion/{name}"), OscType::Float(v)));
        }
        for (name, v) in a.mid_level.iter() {
            out.push(msg(format!("{p}/mid/{name}"), OscType::Float(v)));
        }
        let dominant = a.emotions.dominant();
        out.push(msg(
            format!("{p}/dominant"),
            OscType::String(dominant.into()),
        ));
        if s.explanation {
            for (emotion, e) in a.explanation.iter() {
                for (feature, v) in e.effects.iter() {
                    out.push(msg(
                        format!("{p}/explain/{emotion}/{feature}"),
                        OscType::Float(v),
                    ));
                }
            }
        }
    }
    out
}

fn state_name(s: InputState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

impl Sink for OscSink {
    fn name(&self) -> &'static str {
        "osc"
    }

    fn publish(&mut self, p: &Published) -> Result<(), SinkError> {
        let packets = messages(&self.settings, &p.reading);
        let datagrams: Vec<Vec<u8>> = if self.settings.bundle {
            let bundle = OscPacket::Bundle(OscBundle {
                timetag: OscTime::from((0, 1)), // "immediately"
                content: packets,
            });
            vec![encoder::encode(&bundle).map_err(|e| SinkError::Failed(format!("osc: {e}")))?]
        } else {
            packets
                .iter()
                .map(encoder::encode)
                .collect::<Result<_, _>>()
                .map_err(|e| SinkError::Failed(format!("osc: {e}")))?
        };
        let mut failed = None;
        for target in &self.settings.targets {
            for d in &datagrams {
                if let Err(e) = self.socket.send_to(d, target) {
                    failed = Some(format!("{target}: {e}"));
                    break;
                }
            }
        }
        match failed {
            None => Ok(()),
            Some(why) => Err(SinkError::Down(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loaded;

    fn osc(text: &str) -> Result<Option<OscSettings>, String> {
        let s = Loaded::parse(text, "t")
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())?;
        Ok(s.outputs.into_iter().find_map(|o| match o {
            SinkSettings::Osc(o) => Some(o),
            _ => None,
        }))
    }

    #[test]
    fn targets_and_prefix_are_checked() {
        let s = osc("[osc]\ntargets = [\"127.0.0.1:9000\"]\n")
            .unwrap()
            .unwrap();
        assert_eq!(s.targets, vec!["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(osc("[osc]\n").unwrap(), None);
        let err = osc("[osc]\ntargets = [\"nowhere\"]\n").unwrap_err();
        assert!(err.starts_with("t:2:1: targets = \"nowhere\""), "{err}");
        let err = osc("[osc]\ntargets = [\"127.0.0.1:9000\"]\nprefix = \"a/\"\n").unwrap_err();
        assert!(err.starts_with("t:3:1: prefix"), "{err}");
    }
}
