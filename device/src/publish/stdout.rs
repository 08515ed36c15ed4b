//! NDJSON on standard output: the hello line, then one line per reading,
//! flushed per line so that pipes see readings as they happen.

use std::io::{ErrorKind, Write};

use earshot_protocol::{encode_line, Hello, Message};
use serde::Deserialize;

use super::{PublishError, Published, Sink, SinkError, SinkSettings};
use crate::config::{Check, ConfigError};

/// `[stdout]` in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutConfig {
    /// Write NDJSON (hello, then readings) to standard output.
    pub enabled: bool,
}

impl StdoutConfig {
    pub fn validate(&self, _: &Check) -> Result<Option<SinkSettings>, ConfigError> {
        Ok(self.enabled.then_some(SinkSettings::Stdout))
    }
}

/// Writes the protocol to stdout.
pub struct StdoutSink;

impl StdoutSink {
    /// Writes the hello line at once, so a reader knows the stream before the
    /// first reading; an output that cannot take it (a full disk) is an error.
    pub fn new(hello: &Hello) -> Result<Self, PublishError> {
        let mut sink = Self;
        match sink.write(&encode_line(&Message::Hello(hello.clone()))) {
            Ok(()) => Ok(sink),
            Err(SinkError::Failed(message)) => Err(PublishError::SinkFailed(message)),
            Err(e) => {
                tracing::warn!("stdout: {e}");
                Ok(sink)
            }
        }
    }

    fn write(&mut self, line: &str) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        let result = out.write_all(line.as_bytes()).and_then(|_| out.flush());
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                Err(SinkError::Closed("standard output was closed".into()))
            }
            // stdout set non-blocking by someone sharing it: worth a retry
            Err(e) if e.kind() == ErrorKind::WouldBlock => Err(SinkError::Io(e)),
            // A full disk, a read-only or vanished file: retrying loses the
            // readings just as surely, only later and silently.
            Err(e) => Err(SinkError::Failed(format!(
                "cannot write readings to standard output: {e}"
            ))),
        }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn publish(&mut self, p: &Published) -> Result<(), SinkError> {
        self.write(&p.line)
    }
}
