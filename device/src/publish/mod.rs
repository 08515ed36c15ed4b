//! Outputs: a shelf of sinks. Every output is a [`Sink`] that owns its config
//! table (schema and checks), construction and health; [`SinkSettings`] names
//! them, and [`build`] is the one place that starts them. [`FanOut`] gives each
//! sink its own thread and bounded queue, so a slow or failing sink never
//! stalls inference, and encodes each reading once for all of them.

mod fanout;
pub mod history;
pub mod mqtt;
pub mod osc;
mod queue;
pub mod server;
pub mod stdout;

use std::sync::Arc;

use earshot_protocol::{Hello, Reading};

pub use fanout::FanOut;
pub use queue::Queue;

use crate::health::Counters;
use crate::Shutdown;

/// Why a sink could not publish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The output is gone for good (e.g. stdout closed); fan-out stops feeding it.
    #[error("closed: {0}")]
    Closed(String),
    /// The output is unreachable for now (e.g. the broker is down) and comes
    /// back by itself: the reading is skipped, not retried or replayed later.
    #[error("down: {0}")]
    Down(String),
    /// The output is broken (e.g. the disk is full): its readings would be lost
    /// silently, so the daemon stops with this message.
    #[error("{0}")]
    Failed(String),
}

/// One reading as every sink sees it: the value, and its protocol line
/// (NDJSON, newline-terminated), encoded once for all sinks.
#[derive(Debug)]
pub struct Published {
    pub reading: Reading,
    pub line: Arc<str>,
}

impl Published {
    pub fn new(reading: Reading) -> Self {
        let line = earshot_protocol::encode_line(&earshot_protocol::Message::Reading(Box::new(
            reading.clone(),
        )))
        .into();
        Self { reading, line }
    }
}

/// An output that receives every reading, in order.
pub trait Sink: Send {
    /// Stable short name for logs and health ("stdout", "server", "mqtt").
    fn name(&self) -> &'static str;
    /// Publishes one reading, on the sink's own thread. Return errors; fan-out retries.
    fn publish(&mut self, reading: &Published) -> Result<(), SinkError>;
    /// Called once at shutdown.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// What every sink may need when it is built.
pub struct SinkContext<'a> {
    pub hello: &'a Hello,
    pub health: &'a Arc<Counters>,
    pub shutdown: &'a Shutdown,
}

/// A checked sink configuration: one variant per kind of output.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SinkSettings {
    Server(server::ServerSettings),
    Stdout,
    Mqtt(mqtt::MqttSettings),
    Osc(osc::OscSettings),
    History(history::HistorySettings),
    Lights(Box<crate::lights::LightsSettings>),
}

/// Why outputs could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("cannot listen on {what}: {source}; {hint}")]
    Bind {
        what: String,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no outputs: enable the stream server, pass --stdout, --mqtt or --osc, or configure [lights]"
    )]
    NoOutputs,
    /// An output cannot start; the message names it and what to do.
    #[error("{0}")]
    Start(String),
    /// An output broke while running (see [`SinkError::Failed`]).
    #[error("{0}")]
    SinkFailed(String),
}

/// Starts the configured sinks, in order.
pub fn build(
    outputs: &[SinkSettings],
    ctx: &SinkContext,
) -> Result<Vec<Box<dyn Sink>>, PublishError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    // Consoles ask the stream server for the history that the history sink keeps.
    let history_db = outputs.iter().find_map(|o| match o {
        SinkSettings::History(h) => Some(h.path.clone()),
        _ => None,
    });
    for output in outputs {
        sinks.push(match output {
            SinkSettings::Server(s) => Box::new(server::Server::start(
                s,
                ctx.hello,
                Arc::clone(ctx.health),
                history_db.clone(),
            )?),
            SinkSettings::Stdout => Box::new(stdout::StdoutSink::new(ctx.hello)?),
            SinkSettings::Mqtt(s) => Box::new(mqtt::MqttSink::start(s, ctx)?),
            SinkSettings::Osc(s) => Box::new(osc::OscSink::start(s)?),
            SinkSettings::History(s) => Box::new(history::HistorySink::start(s)?),
            SinkSettings::Lights(s) => crate::lights::sink::start(s, ctx)?,
        });
    }
    if sinks.is_empty() {
        return Err(PublishError::NoOutputs);
    }
    Ok(sinks)
}
