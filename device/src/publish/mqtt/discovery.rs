//! What goes over MQTT: the state payload of a reading, and Home Assistant's
//! discovery configs for it (https://www.home-assistant.io/integrations/mqtt/).

use earshot_protocol::{Emotions, Hello, InputState, MidLevel, Reading};
use serde_json::{json, Map, Value};

use super::config::{Discovery, MqttSettings};

/// One reading as a flat JSON object: plain numbers only (Home Assistant shows a
/// non-numeric value of a numeric sensor as "unknown"). Emotions and mid-level
/// values are present only while music plays; their sensors read "unknown" then.
pub fn state_payload(reading: &Reading) -> String {
    let mut m = Map::new();
    m.insert("seq".into(), json!(reading.seq));
    m.insert("time_ms".into(), json!(reading.time_ms));
    m.insert("state".into(), json!(reading.state));
    m.insert("music".into(), json!(reading.state == InputState::Music));
    m.insert("level_dbfs".into(), json!(round(reading.level_dbfs, 1)));
    m.insert("latency_ms".into(), json!(round(reading.latency_ms, 2)));
    m.insert(
        "dropped_frames".into(),
        json!(reading.health.dropped_frames),
    );
    if let Some(a) = &reading.analysis {
        m.insert("in_range".into(), json!(a.in_range));
        for (name, v) in a.emotions.iter().chain(a.mid_level.iter()) {
            m.insert(name.into(), json!(round(v, 4)));
        }
        m.insert("dominant".into(), json!(a.emotions.dominant()));
    }
    Value::Object(m).to_string()
}

fn round(v: f32, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    let v = f64::from(v);
    if v.is_finite() {
        (v * scale).round() / scale
    } else {
        0.0
    }
}

/// One Home Assistant entity: its platform, object id and config.
struct Entity {
    platform: &'static str,
    object: String,
    config: Map<String, Value>,
}

fn title(name: &str) -> String {
    let mut s = name.replace('_', " ");
    if let Some(first) = s.get(0..1) {
        let upper = first.to_ascii_uppercase();
        s.replace_range(0..1, &upper);
    }
    s
}

fn entities(s: &MqttSettings, hello: &Hello) -> Vec<Entity> {
    // Values go unavailable when readings stop for 3 hops (at least 30 s).
    let expire = (u64::from(hello.hop_ms) * 3 / 1000).max(30);
    let id = &s.device_id;
    let mut out = Vec::new();
    let value = |object: &str, name: String, icon: &str, category: Option<&str>| {
        let mut c = Map::new();
        c.insert("name".into(), json!(name));
        c.insert("unique_id".into(), json!(format!("{id}_{object}")));
        c.insert(
            "value_template".into(),
            json!(format!(
                "{{{{ value_json.{object} if value_json.{object} is defined else None }}}}"
            )),
        );
        c.insert("state_class".into(), json!("measurement"));
        c.insert("suggested_display_precision".into(), json!(2));
        c.insert("expire_after".into(), json!(expire));
        c.insert("icon".into(), json!(icon));
        if let Some(cat) = category {
            c.insert("entity_category".into(), json!(cat));
        }
        c
    };
    for name in Emotions::<f32>::NAMES {
        out.push(Entity {
            platform: "sensor",
            object: name.to_string(),
            config: value(name, title(name), "mdi:emoticon-outline", None),
        });
    }
    for name in MidLevel::<f32>::NAMES {
        out.push(Entity {
            platform: "sensor",
            object: name.to_string(),
            config: value(name, title(name), "mdi:music-note", None),
        });
    }
    let mut level = value(
        "level_dbfs",
        "Input level".into(),
        "mdi:microphone",
        Some("diagnostic"),
    );
    level.insert("unit_of_measurement".into(), json!("dBFS"));
    level.insert("suggested_display_precision".into(), json!(1));
    out.push(Entity {
        platform: "sensor",
        object: "level_dbfs".into(),
        config: level,
    });
    let mut latency = value(
        "latency_ms",
        "Inference latency".into(),
        "mdi:timer-outline",
        Some("diagnostic"),
    );
    latency.insert("unit_of_measurement".into(), json!("ms"));
    out.push(Entity {
        platform: "sensor",
        object: "latency_ms".into(),
        config: latency,
    });
    let mut dropped = value(
        "dropped_frames",
        "Dropped audio".into(),
        "mdi:alert",
        Some("diagnostic"),
    );
    dropped.insert("state_class".into(), json!("total_increasing"));
    dropped.insert("suggested_display_precision".into(), json!(0));
    out.push(Entity {
        platform: "sensor",
        object: "dropped_frames".into(),
        config: dropped,
    });
    let mut dominant = Map::new();
    dominant.insert("name".into(), json!("Dominant emotion"));
    dominant.insert("unique_id".into(), json!(format!("{id}_dominant")));
    dominant.insert("device_class".into(), json!("enum"));
    dominant.insert("options".into(), json!(Emotions::<f32>::NAMES));
    dominant.insert(
        "value_template".into(),
        json!("{{ value_json.dominant if value_json.dominant is defined else None }}"),
    );
    dominant.insert("expire_after".into(), json!(expire));
    dominant.insert("icon".into(), json!("mdi:drama-masks"));
    out.push(Entity {
        platform: "sensor",
        object: "dominant".into(),
        config: dominant,
    });
    let mut music = Map::new();
    music.insert("name".into(), json!("Music"));
    music.insert("unique_id".into(), json!(format!("{id}_music")));
    music.insert("device_class".into(), json!("sound"));
    music.insert(
        "value_template".into(),
        json!("{{ 'ON' if value_json.music else 'OFF' }}"),
    );
    music.insert("expire_after".into(), json!(expire));
    out.push(Entity {
        platform: "binary_sensor",
        object: "music".into(),
        config: music,
    });
    let mut unfamiliar = Map::new();
    unfamiliar.insert("name".into(), json!("Unfamiliar audio"));
    unfamiliar.insert("unique_id".into(), json!(format!("{id}_unfamiliar")));
    unfamiliar.insert("device_class".into(), json!("problem"));
    unfamiliar.insert("entity_category".into(), json!("diagnostic"));
    unfamiliar.insert(
        "value_template".into(),
        json!(
            "{{ 'ON' if value_json.in_range is defined and not value_json.in_range else 'OFF' }}"
        ),
    );
    unfamiliar.insert("expire_after".into(), json!(expire));
    out.push(Entity {
        platform: "binary_sensor",
        object: "unfamiliar".into(),
        config: unfamiliar,
    });
    out
}

fn device(s: &MqttSettings, hello: &Hello) -> Value {
    json!({
        "identifiers": [s.device_id],
        "name": format!("earshot {}", s.device_id.trim_start_matches("earshot-")),
        "manufacturer": "earshot",
        "model": format!("music-emotion sensor, model {}", hello.model_id),
        "sw_version": hello.daemon,
    })
}

fn origin() -> Value {
    json!({
        "name": "earshotd",
        "sw": env!("CARGO_PKG_VERSION"),
        "url": "https://example.invalid/earshot",
    })
}

/// The retained discovery messages, `(topic, payload)`.
pub fn messages(s: &MqttSettings, hello: &Hello) -> Vec<(String, String)> {
    let state = s.state_topic();
    let avail = s.availability_topic();
    match s.discovery {
        Discovery::Off => Vec::new(),
        Discovery::Device => {
            let mut cmps = Map::new();
            for e in entities(s, hello) {
                let mut c = e.config;
                c.insert("platform".into(), json!(e.platform));
                cmps.insert(e.object, Value::Object(c));
            }
            let payload = json!({
                "dev": device(s, hello),
                "o": origin(),
                "cmps": cmps,
                "state_topic": state,
                "availability_topic": avail,
                "payload_available": "online",
                "payload_not_available": "offline",
                "qos": s.qos,
            });
            vec![(
                format!("{}/device/{}/config", s.discovery_prefix, s.device_id),
                payload.to_string(),
            )]
        }
        Discovery::Entity => entities(s, hello)
            .into_iter()
            .map(|e| {
                let mut c = e.config;
                c.insert("device".into(), device(s, hello));
                c.insert("origin".into(), origin());
                c.insert("state_topic".into(), json!(state));
                c.insert("availability_topic".into(), json!(avail));
                c.insert("payload_available".into(), json!("online"));
                c.insert("payload_not_available".into(), json!("offline"));
                c.insert("qos".into(), json!(s.qos));
                (
                    format!(
                        "{}/{}/{}/{}/config",
                        s.discovery_prefix, e.platform, s.device_id, e.object
                    ),
                    Value::Object(c).to_string(),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(discovery: Discovery) -> MqttSettings {
        MqttSettings {
            host: "h".into(),
            port: 1883,
            tls: None,
            device_id: "earshot-bar".into(),
            client_id: "c".into(),
            credentials: None,
            qos: 0,
            topic_prefix: "earshot".into(),
            discovery,
            discovery_prefix: "homeassistant".into(),
            keep_alive: Duration::from_secs(30),
        }
    }

    fn hello() -> Hello {
        Hello {
            daemon: "0.1.0".into(),
            model_id: "edge-v8".into(),
            source: "demo".into(),
            hop_ms: 990,
            window_ms: 9993,
            smoothing_ms: 3000,
            mid_level_means: MidLevel::from_array([0.5; 7]),
        }
    }

    #[test]
    fn device_discovery_has_a_sensor_per_value_with_unique_ids() {
        let m = messages(&settings(Discovery::Device), &hello());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, "homeassistant/device/earshot-bar/config");
        let v: Value = serde_json::from_str(&m[0].1).unwrap();
        let cmps = v["cmps"].as_object().unwrap();
        assert_eq!(cmps.len(), 8 + 7 + 6);
        assert_eq!(cmps["valence"]["platform"], "sensor");
        assert_eq!(cmps["valence"]["unique_id"], "earshot-bar_valence");
        assert_eq!(cmps["valence"]["state_class"], "measurement");
        assert_eq!(cmps["valence"]["expire_after"], 30);
        assert_eq!(cmps["music"]["platform"], "binary_sensor");
        assert_eq!(v["dev"]["identifiers"][0], "earshot-bar");
        assert_eq!(v["state_topic"], "earshot/earshot-bar/state");
        assert_eq!(v["o"]["name"], "earshotd");
    }

    #[test]
    fn entity_discovery_has_one_config_per_entity() {
        let m = messages(&settings(Discovery::Entity), &hello());
        assert_eq!(m.len(), 21);
        assert!(m
            .iter()
            .any(|(t, _)| t == "homeassistant/sensor/earshot-bar/tension/config"));
        assert!(m
            .iter()
            .any(|(t, _)| t == "homeassistant/binary_sensor/earshot-bar/music/config"));
        assert!(messages(&settings(Discovery::Off), &hello()).is_empty());
    }
}
