//! Outputs. Every output is a [`Sink`]; [`FanOut`] gives each its own thread
//! and bounded queue, so a slow or failing sink never stalls inference. Only
//! [`sinks_from_settings`] names the concrete outputs, and only builds them.

mod fanout;
mod queue;
pub mod server;
pub mod stdout;

use std::sync::Arc;

use earshot_protocol::{Hello, Reading};

pub use fanout::FanOut;
pub use queue::Queue;

use crate::config::Settings;
use crate::health::Counters;

/// Why a sink could not publish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The output is gone for good (e.g. stdout closed); fan-out stops feeding it.
    #[error("closed: {0}")]
    Closed(String),
    /// The output is broken (e.g. the disk is full): its readings would be lost
    /// silently, so the daemon stops with this message.
    #[error("{0}")]
    Failed(String),
}

/// An output that receives every reading, in order.
pub trait Sink: Send {
    /// Stable short name for logs and health counters ("stdout", "server").
    fn name(&self) -> &'static str;
    /// Publishes one reading, on the sink's own thread. Return errors; fan-out retries.
    fn publish(&mut self, reading: &Reading) -> Result<(), SinkError>;
    /// Called once at shutdown.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
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
    #[error("no outputs: enable the stream server or pass --stdout")]
    NoOutputs,
    /// An output broke while running (see [`SinkError::Failed`]).
    #[error("{0}")]
    SinkFailed(String),
}

/// Builds the configured sinks (the one place that knows them all).
pub fn sinks_from_settings(
    settings: &Settings,
    hello: &Hello,
    health: &Arc<Counters>,
) -> Result<Vec<Box<dyn Sink>>, PublishError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(server) = &settings.server {
        sinks.push(Box::new(server::Server::start(
            server,
            hello,
            Arc::clone(health),
        )?));
    }
    if settings.stdout {
        sinks.push(Box::new(stdout::StdoutSink::new(hello)?));
    }
    if sinks.is_empty() {
        return Err(PublishError::NoOutputs);
    }
    Ok(sinks)
}
