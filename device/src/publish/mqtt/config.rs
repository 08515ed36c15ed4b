//! `[mqtt]` in the config (and `--mqtt URL`), checked once into [`MqttSettings`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Check, ConfigError};

/// How Home Assistant learns about the sensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    /// One retained `<prefix>/device/<id>/config` for all entities (HA 2024.11 and later).
    #[default]
    Device,
    /// One retained config per entity (`<prefix>/sensor/<id>/<object>/config`), for older HA.
    Entity,
    /// No discovery messages: readings and availability only.
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Broker, e.g. "mqtt://homeassistant.local:1883" or "mqtts://broker:8883"; empty: no MQTT.
    pub url: String,
    /// Names this sensor in topics, unique ids and Home Assistant; default "earshot-<hostname>".
    pub device_id: Option<String>,
    /// Default: the device id.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// A file whose first line is the password (keeps it out of the config).
    pub password_file: Option<PathBuf>,
    /// PEM file of the CAs to trust for mqtts:// (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// 0 (at most once, the default: a reading a second needs no resend) or 1.
    pub qos: u8,
    /// Readings go to `<topic_prefix>/<device_id>/state`.
    pub topic_prefix: String,
    pub discovery: Discovery,
    pub discovery_prefix: String,
    pub keep_alive_s: u32,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            device_id: None,
            client_id: None,
            username: None,
            password_file: None,
            ca_file: None,
            qos: 0,
            topic_prefix: "earshot".into(),
            discovery: Discovery::Device,
            discovery_prefix: "homeassistant".into(),
            keep_alive_s: 30,
        }
    }
}

/// Where the system keeps its CA bundle on Debian.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// `Some(ca file)` for mqtts://.
    pub tls: Option<PathBuf>,
    pub device_id: String,
    pub client_id: String,
    /// Username and password.
    pub credentials: Option<(String, Secret)>,
    pub qos: u8,
    pub topic_prefix: String,
    pub discovery: Discovery,
    pub discovery_prefix: String,
    pub keep_alive: Duration,
}

/// A password; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl MqttSettings {
    pub fn state_topic(&self) -> String {
        format!("{}/{}/state", self.topic_prefix, self.device_id)
    }

    pub fn availability_topic(&self) -> String {
        format!("{}/{}/availability", self.topic_prefix, self.device_id)
    }

    /// Home Assistant announces itself here (`online`) when it (re)starts.
    pub fn birth_topic(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }
}

impl MqttConfig {
    pub fn validate(&self, check: &Check) -> Result<Option<MqttSettings>, ConfigError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Ok(None);
        }
        let bad = |value: &str, why: &str| check.invalid("mqtt", "url", format!("{value:?}"), why);
        let (tls, rest, default_port) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest, 8883)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest, 1883)
        } else if url.contains("://") {
            return Err(bad(url, "use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"));
        } else {
            (false, url, 1883)
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('@') {
            return Err(bad(
                url,
                "put credentials in username and password_file, not in the URL",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // an IPv6 literal is bracketed: [::1]:1883
            Some((h, p)) if !h.ends_with(':') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad(url, "the port must be a number from 1 to 65535"))?,
            ),
            _ => (rest, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad(
                url,
                "name the broker, e.g. mqtt://homeassistant.local:1883 (credentials go in username and password_file)",
            ));
        }
        let device_id = match &self.device_id {
            Some(id) => id.clone(),
            None => format!("earshot-{}", hostname()),
        };
        if device_id.is_empty()
            || device_id.len() > 64
            || !device_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(check.invalid(
                "mqtt",
                "device_id",
                format!("{device_id:?}"),
                "use 1 to 64 letters, digits, '-' or '_' (it becomes part of topics and unique ids)",
            ));
        }
        for (key, topic) in [
            ("topic_prefix", &self.topic_prefix),
            ("discovery_prefix", &self.discovery_prefix),
        ] {
            if topic.is_empty() || topic.contains(['+', '#', '\0']) || topic.ends_with('/') {
                return Err(check.invalid(
                    "mqtt",
                    key,
                    format!("{topic:?}"),
                    "a topic without wildcards (+ #) or a trailing '/', e.g. \"earshot\"",
                ));
            }
        }
        if self.qos > 1 {
            return Err(check.invalid(
                "mqtt",
                "qos",
                self.qos,
                "must be 0 or 1 (readings are replaced every second; 2 only adds round trips)",
            ));
        }
        if !(5..=3600).contains(&self.keep_alive_s) {
            return Err(check.invalid(
                "mqtt",
                "keep_alive_s",
                self.keep_alive_s,
                "must be between 5 and 3600",
            ));
        }
        let credentials = match (&self.username, &self.password_file) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(check.invalid(
                    "mqtt",
                    "password_file",
                    "(set)",
                    "a password needs a username too",
                ))
            }
            (Some(user), None) => Some((user.clone(), Secret(String::new()))),
            (Some(user), Some(path)) => {
                let password = crate::config::read_secret_line(path).map_err(|why| {
                    check.invalid(
                        "mqtt",
                        "password_file",
                        format!("{:?}", path.display()),
                        why,
                    )
                })?;
                Some((user.clone(), Secret(password)))
            }
        };
        let tls = if tls {
            let ca = self
                .ca_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_FILE));
            if !ca.is_file() {
                return Err(check.invalid(
                    "mqtt",
                    "ca_file",
                    format!("{:?}", ca.display()),
                    "no such file: name a PEM file of CA certificates (Debian: install ca-certificates)",
                ));
            }
            Some(ca)
        } else {
            None
        };
        Ok(Some(MqttSettings {
            host: host.to_string(),
            port,
            tls,
            client_id: self.client_id.clone().unwrap_or_else(|| device_id.clone()),
            device_id,
            credentials,
            qos: self.qos,
            topic_prefix: self.topic_prefix.clone(),
            discovery: self.discovery,
            discovery_prefix: self.discovery_prefix.clone(),
            keep_alive: Duration::from_secs(u64::from(self.keep_alive_s)),
        }))
    }
}

/// This machine's name, reduced to what a topic and an id may hold.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if name.is_empty() {
        "sensor".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loaded;

    fn mqtt(text: &str) -> Result<Option<MqttSettings>, String> {
        let loaded = Loaded::parse(text, "t").map_err(|e| e.to_string())?;
        loaded
            .validate()
            .map(|s| {
                s.outputs.into_iter().find_map(|o| match o {
                    crate::publish::SinkSettings::Mqtt(m) => Some(m),
                    _ => None,
                })
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn urls_hosts_ports_and_tls() {
        let s = mqtt("[mqtt]\nurl = \"mqtt://broker.lan\"\ndevice_id = \"bar\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls.is_none()),
            ("broker.lan", 1883, true)
        );
        assert_eq!(s.state_topic(), "earshot/bar/state");
        assert_eq!(s.client_id, "bar");
        let s = mqtt("[mqtt]\nurl = \"127.0.0.1:1999\"\n").unwrap().unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 1999));
        assert!(s.device_id.starts_with("earshot-"), "{}", s.device_id);
        let s = mqtt("[mqtt]\nurl = \"mqtt://[::1]:1884\"\n")
            .unwrap()
            .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 1884));
        if Path::new(SYSTEM_CA_FILE).is_file() {
            let s = mqtt("[mqtt]\nurl = \"mqtts://b\"\n").unwrap().unwrap();
            assert_eq!(s.port, 8883);
            assert!(s.tls.is_some());
        }
        assert_eq!(mqtt("[mqtt]\nurl = \"\"\n").unwrap(), None);
    }

    use std::path::Path;

    #[test]
    fn bad_values_name_line_and_key() {
        for (text, start) in [
            (
                "[mqtt]\nurl = \"http://x\"\n",
                "t:2:1: url = \"http://x\": use mqtt://",
            ),
            (
                "[mqtt]\nurl = \"mqtt://x:0\"\n",
                "t:2:1: url = \"mqtt://x:0\": the port",
            ),
            (
                "[mqtt]\nurl = \"mqtt://u:p@x\"\n",
                "t:2:1: url = \"mqtt://u:p@x\": put credentials",
            ),
            (
                "[mqtt]\nurl = \"x\"\nqos = 2\n",
                "t:3:1: qos = 2: must be 0 or 1",
            ),
            (
                "[mqtt]\nurl = \"x\"\ndevice_id = \"a b\"\n",
                "t:3:1: device_id = \"a b\"",
            ),
            (
                "[mqtt]\nurl = \"x\"\ntopic_prefix = \"a/#\"\n",
                "t:3:1: topic_prefix",
            ),
            (
                "[mqtt]\nurl = \"mqtts://x\"\nca_file = \"/nonexistent.pem\"\n",
                "t:3:1: ca_file",
            ),
        ] {
            let err = mqtt(text).unwrap_err();
            assert!(err.starts_with(start), "{text:?}: {err}");
        }
    }

    #[test]
    fn password_comes_from_a_file_and_is_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let text = format!(
            "[mqtt]\nurl = \"x\"\nusername = \"ha\"\npassword_file = {:?}\n",
            file.display().to_string()
        );
        let s = mqtt(&text).unwrap().unwrap();
        let (user, pw) = s.credentials.clone().unwrap();
        assert_eq!((user.as_str(), pw.0.as_str()), ("ha", "s3cret"));
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
