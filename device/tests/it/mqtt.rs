//! MQTT against a real broker: mosquitto (Debian's package) started on a
//! spare loopback port. The test's subscriber is a plain MQTT client; payloads
//! are checked as JSON, not with the daemon's encoder.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use serde_json::Value;

use super::util::{earshotd, Daemon};

struct Broker {
    child: Child,
    _dir: tempfile::TempDir,
}

fn mosquitto_bin() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
    {
        let p = PathBuf::from(dir).join("mosquitto");
        if p.is_file() {
            return p;
        }
    }
    panic!("mosquitto is not installed: `bash scripts/setup.sh` installs it (Debian package mosquitto)");
}

impl Broker {
    fn start(port: u16) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, _dir: dir }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A message as the broker delivered it.
#[derive(Debug, Clone)]
struct Msg {
    topic: String,
    payload: String,
    retain: bool,
}

/// Subscribes to everything; returns the client (to publish with) and the messages.
fn subscribe(port: u16, id: &str) -> (Client, Receiver<Msg>) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = Client::new(opts, 64);
    client.subscribe("#", QoS::AtMostOnce).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for event in conn.iter() {
            match event {
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let m = Msg {
                        topic: p.topic.clone(),
                        payload: String::from_utf8_lossy(&p.payload).into_owned(),
                        retain: p.retain,
                    };
                    if tx.send(m).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    (client, rx)
}

/// The first message satisfying `pred` within `limit`.
fn wait_for(rx: &Receiver<Msg>, limit: Duration, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(m) if pred(&m) => return m,
            Ok(_) => {}
            Err(_) => panic!("no {what} within {limit:?}"),
        }
    }
}

fn json(m: &Msg) -> Value {
    serde_json::from_str(&m.payload)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", m.topic, m.payload))
}

#[test]
fn readings_and_discovery_reach_a_real_broker_and_survive_its_restart() {
    let port = free_port();
    let broker = Broker::start(port);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("earshot.toml");
    std::fs::write(&config, "[mqtt]\ndevice_id = \"itest\"\n").unwrap();
    let (ha, rx) = subscribe(port, "itest-sub-1");
    let mut daemon = Daemon::spawn(
        earshotd()
            .args(["run", "--demo", "--no-server", "--config"])
            .arg(&config)
            .arg("--mqtt")
            .arg(format!("mqtt://127.0.0.1:{port}")),
    );
    daemon.wait_stderr("mqtt: connected", Duration::from_secs(60));

    let online = wait_for(&rx, Duration::from_secs(20), "availability", |m| {
        m.topic == "earshot/itest/availability"
    });
    assert_eq!(online.payload, "online");
    let disco = wait_for(&rx, Duration::from_secs(20), "discovery", |m| {
        m.topic == "homeassistant/device/itest/config"
    });
    // a subscriber that comes later (Home Assistant starting) gets it from the broker's store
    let (_late, late_rx) = subscribe(port, "itest-sub-late");
    let stored = wait_for(
        &late_rx,
        Duration::from_secs(10),
        "retained discovery",
        |m| m.topic == "homeassistant/device/itest/config",
    );
    assert!(stored.retain, "discovery is retained");
    let d = json(&disco);
    assert_eq!(d["state_topic"], "earshot/itest/state");
    assert_eq!(d["availability_topic"], "earshot/itest/availability");
    assert_eq!(d["dev"]["identifiers"][0], "itest");
    let cmps = d["cmps"].as_object().expect("cmps");
    for name in [
        "valence",
        "energy",
        "tension",
        "tender",
        "melodiousness",
        "minorness",
    ] {
        assert_eq!(cmps[name]["platform"], "sensor", "{name}");
        assert_eq!(cmps[name]["state_class"], "measurement", "{name}");
        assert_eq!(cmps[name]["unique_id"], format!("itest_{name}"));
        assert!(cmps[name]["expire_after"].as_u64().unwrap() >= 30);
    }
    assert_eq!(cmps["music"]["platform"], "binary_sensor");

    // readings: plain numbers while music plays (linear outputs: about 0..1, not clipped)
    let music = wait_for(&rx, Duration::from_secs(30), "a music reading", |m| {
        m.topic == "earshot/itest/state" && json(m)["music"] == true
    });
    let r = json(&music);
    assert!(!music.retain);
    for name in [
        "valence", "energy", "tension", "anger", "fear", "happy", "sad", "tender",
    ] {
        let v = r[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} is a number: {r}"));
        assert!((-0.25..=1.25).contains(&v), "{name} = {v}");
    }
    assert!(r["level_dbfs"].as_f64().unwrap() < 0.0);
    let seq_before = r["seq"].as_u64().unwrap();

    // Home Assistant restarts: discovery is sent again
    ha.publish("homeassistant/status", QoS::AtLeastOnce, false, "online")
        .unwrap();
    wait_for(
        &rx,
        Duration::from_secs(20),
        "discovery after HA's birth message",
        |m| m.topic == "homeassistant/device/itest/config",
    );

    // the broker goes away: the daemon keeps running and says so
    broker.stop();
    daemon.wait_stderr("mqtt: broker 127.0.0.1", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let broker = Broker::start(port);
    let (_ha2, rx2) = subscribe(port, "itest-sub-2");
    // publishing resumes with fresh readings; nothing from the outage is replayed
    let first = wait_for(
        &rx2,
        Duration::from_secs(60),
        "a reading after the restart",
        |m| m.topic == "earshot/itest/state",
    );
    let r = json(&first);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(r["seq"].as_u64().unwrap() > seq_before + 3, "{r}");
    assert!(
        now_ms.saturating_sub(r["time_ms"].as_u64().unwrap()) < 3_000,
        "a stale reading was published after reconnecting: {r}"
    );
    // (the live "online" may have come before that reading: ask the broker's store)
    let (_c, rx_avail) = subscribe(port, "itest-sub-avail");
    let avail = wait_for(
        &rx_avail,
        Duration::from_secs(10),
        "availability after the restart",
        |m| m.topic == "earshot/itest/availability",
    );
    assert_eq!((avail.payload.as_str(), avail.retain), ("online", true));

    // a clean stop leaves "offline" retained
    assert!(daemon.terminate().success());
    let (_c, rx3) = subscribe(port, "itest-sub-3");
    let last = wait_for(
        &rx3,
        Duration::from_secs(10),
        "retained availability",
        |m| m.topic == "earshot/itest/availability",
    );
    assert_eq!((last.payload.as_str(), last.retain), ("offline", true));
    drop(broker);
}

#[test]
fn an_unreachable_broker_does_not_stop_the_daemon_or_the_console_stream() {
    let port = free_port(); // nobody listens there
    let mut daemon = Daemon::spawn(
        earshotd()
            .args(["run", "--demo", "--no-server", "--stdout", "--mqtt"])
            .arg(format!("mqtt://127.0.0.1:{port}")),
    );
    daemon.wait_stderr("mqtt: broker 127.0.0.1", Duration::from_secs(60));
    // readings keep flowing to the other outputs, and the mqtt output reads "down"
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_down = false;
    while Instant::now() < deadline && !seen_down {
        let line = daemon.line(Duration::from_secs(10));
        let v: Value = serde_json::from_str(&line).unwrap();
        if let Some(outputs) = v["health"]["outputs"].as_array() {
            seen_down = outputs
                .iter()
                .any(|o| o["name"] == "mqtt" && o["state"] == "down");
        }
    }
    assert!(
        seen_down,
        "the mqtt output never read \"down\":\n{}",
        daemon.stderr()
    );
    assert!(daemon.terminate().success());
}
