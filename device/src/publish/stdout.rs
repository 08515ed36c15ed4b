//! NDJSON on standard output: the hello line, then one line per reading,
//! flushed per line so that pipes see readings as they happen.

use std::io::{ErrorKind, Write};

use earshot_protocol::{encode_line, Hello, Message, Reading};

use super::{Sink, SinkError};

/// Writes the protocol to stdout.
pub struct StdoutSink;

impl StdoutSink {
    /// Writes the hello line at once, so a reader knows the stream before the first reading.
    pub fn new(hello: &Hello) -> Self {
        let mut sink = Self;
        if let Err(e) = sink.write(&encode_line(&Message::Hello(hello.clone()))) {
            tracing::warn!("stdout: {e}");
        }
        sink
    }

    fn write(&mut self, line: &str) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        let result = out.write_all(line.as_bytes()).and_then(|_| out.flush());
        match result {
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                Err(SinkError::Closed("standard output was closed".into()))
            }
            other => Ok(other?),
        }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn publish(&mut self, reading: &Reading) -> Result<(), SinkError> {
        self.write(&encode_line(&Message::Reading(Box::new(reading.clone()))))
    }
}
