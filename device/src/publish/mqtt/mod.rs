//! MQTT (rumqttc): each reading as JSON on `<prefix>/<device>/state`, retained
//! availability with a last will, and Home Assistant discovery, sent again
//! whenever Home Assistant announces itself (`homeassistant/status` = online).
//!
//! The connection lives on its own thread and reconnects with backoff. While
//! the broker is away, readings are skipped (the output reads `down`), not
//! queued: a reading a minute old is not news.

mod config;
mod discovery;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use earshot_protocol::Hello;
use rumqttc::{
    Client, ConnectionError, Event, Incoming, LastWill, MqttOptions, QoS, RecvTimeoutError,
    TlsConfiguration, Transport,
};

pub use config::{Discovery, MqttConfig, MqttSettings, Secret};

use super::{PublishError, Published, Sink, SinkContext, SinkError};

/// Requests rumqttc may hold while the connection thread works through them.
const REQUESTS: usize = 64;
/// Reconnect delay: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));
/// How often the connection thread looks for shutdown.
const POLL: Duration = Duration::from_millis(200);

struct Shared {
    connected: AtomicBool,
    stop: AtomicBool,
}

pub struct MqttSink {
    client: Client,
    settings: MqttSettings,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// TLS with the CAs in `ca_file`, through rustls and ring.
fn tls(ca_file: &std::path::Path) -> Result<Transport, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("reading {}: {e}", ca_file.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("reading {}: {e}", ca_file.display()))?;
        // A bundle may hold certificates rustls cannot use; the rest still count.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(format!(
            "{} holds no usable CA certificate",
            ca_file.display()
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(config),
    )))
}

impl MqttSink {
    pub fn start(settings: &MqttSettings, ctx: &SinkContext) -> Result<Self, PublishError> {
        let s = settings.clone();
        let mut options = MqttOptions::new(&s.client_id, &s.host, s.port);
        options
            .set_keep_alive(s.keep_alive)
            .set_clean_session(true)
            .set_last_will(LastWill::new(
                s.availability_topic(),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        if let Some((user, password)) = &s.credentials {
            options.set_credentials(user, &password.0);
        }
        if let Some(ca) = &s.tls {
            options
                .set_transport(tls(ca).map_err(|why| PublishError::Start(format!("mqtt: {why}")))?);
        }
        let (client, connection) = Client::new(options, REQUESTS);
        let shared = Arc::new(Shared {
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let session = Session {
            client: client.clone(),
            settings: s.clone(),
            hello: ctx.hello.clone(),
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || session.run(connection))
            .map_err(|e| PublishError::Start(format!("mqtt: cannot start its thread: {e}")))?;
        tracing::info!(
            "mqtt: publishing to {}:{} on {}",
            s.host,
            s.port,
            s.state_topic()
        );
        Ok(Self {
            client,
            settings: s,
            shared,
            thread: Some(thread),
        })
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn publish(&mut self, p: &Published) -> Result<(), SinkError> {
        if !self.shared.connected.load(Ordering::Relaxed) {
            return Err(SinkError::Down(format!(
                "broker {}:{} not connected",
                self.settings.host, self.settings.port
            )));
        }
        let payload = discovery::state_payload(&p.reading);
        self.client
            .try_publish(
                self.settings.state_topic(),
                qos(self.settings.qos),
                false,
                payload,
            )
            .map_err(|e| SinkError::Down(format!("mqtt: {e}")))
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if self.shared.connected.load(Ordering::Relaxed) {
            // A clean goodbye: the will is only sent for an unclean one.
            let _ = self.client.try_publish(
                self.settings.availability_topic(),
                QoS::AtLeastOnce,
                true,
                "offline",
            );
            let _ = self.client.try_disconnect();
        }
        // give the connection thread a moment to send them, then stop it
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while self.shared.connected.load(Ordering::Relaxed) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(())
    }
}

/// The connection thread's state.
struct Session {
    client: Client,
    settings: MqttSettings,
    hello: Hello,
    shared: Arc<Shared>,
}

impl Session {
    fn run(self, mut connection: rumqttc::Connection) {
        let s = &self.settings;
        let mut backoff = BACKOFF.0;
        let mut outage_logged = false;
        while !self.shared.stop.load(Ordering::Relaxed) {
            match connection.recv_timeout(POLL) {
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Ok(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                    tracing::info!("mqtt: connected to {}:{}", s.host, s.port);
                    backoff = BACKOFF.0;
                    outage_logged = false;
                    self.on_connect();
                }
                Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                    if p.topic == s.birth_topic() && p.payload.as_ref() == b"online" {
                        tracing::info!("mqtt: Home Assistant (re)started; sending discovery");
                        self.send_discovery();
                    }
                }
                Ok(Ok(Event::Incoming(Incoming::Disconnect))) => {
                    self.shared.connected.store(false, Ordering::Relaxed);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    let was = self.shared.connected.swap(false, Ordering::Relaxed);
                    if matches!(e, ConnectionError::RequestsDone) {
                        break;
                    }
                    if was || !outage_logged {
                        tracing::warn!(
                            "mqtt: broker {}:{}: {e}; retrying every {}-{} s",
                            s.host,
                            s.port,
                            BACKOFF.0.as_secs_f32(),
                            BACKOFF.1.as_secs()
                        );
                        outage_logged = true;
                    }
                    self.sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
        self.shared.connected.store(false, Ordering::Relaxed);
    }

    fn on_connect(&self) {
        let s = &self.settings;
        self.shared.connected.store(true, Ordering::Relaxed);
        let _ = self
            .client
            .try_publish(s.availability_topic(), QoS::AtLeastOnce, true, "online");
        if s.discovery != Discovery::Off {
            let _ = self.client.try_subscribe(s.birth_topic(), QoS::AtMostOnce);
            self.send_discovery();
        }
    }

    fn send_discovery(&self) {
        for (topic, payload) in discovery::messages(&self.settings, &self.hello) {
            if let Err(e) = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, true, payload)
            {
                tracing::warn!("mqtt: discovery not sent: {e}");
            }
        }
    }

    fn sleep(&self, d: Duration) {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until && !self.shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL.min(d));
        }
    }
}
