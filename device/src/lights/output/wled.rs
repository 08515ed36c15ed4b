//! WLED's realtime UDP protocol (port 21324): DRGB (up to 490 LEDs in one
//! packet) or DNRGB (a start index, for longer strips). Byte 1 is how many
//! seconds WLED waits after the last packet before it resumes its own effect
//! (255: never), so a dead daemon leaves the strip to WLED, not frozen.

use std::io;
use std::net::SocketAddr;

use super::{LazySocket, Transport};

/// WLED's realtime UDP port.
pub const PORT: u16 = 21324;
/// LEDs in one DRGB packet.
pub const DRGB_MAX_LEDS: usize = 490;
/// LEDs in one DNRGB packet.
pub const DNRGB_MAX_LEDS: usize = 489;

/// Which realtime protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Drgb,
    Dnrgb,
}

/// DRGB: `[2, timeout, r, g, b, ...]`.
pub fn encode_drgb(timeout_s: u8, rgb: [u8; 3], leds: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[2, timeout_s]);
    for _ in 0..leds {
        out.extend_from_slice(&rgb);
    }
}

/// DNRGB: `[4, timeout, start_hi, start_lo, r, g, b, ...]`.
pub fn encode_dnrgb(timeout_s: u8, start: u16, rgb: [u8; 3], leds: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[4, timeout_s]);
    out.extend_from_slice(&start.to_be_bytes());
    for _ in 0..leds {
        out.extend_from_slice(&rgb);
    }
}

/// One WLED strip showing one fixture (an RGB zone colour on every LED).
pub struct Wled {
    name: String,
    target: SocketAddr,
    protocol: Protocol,
    leds: usize,
    timeout_s: u8,
    /// Where the strip's red, green and blue lie in the frame.
    offset: usize,
    socket: LazySocket,
    packet: Vec<u8>,
}

impl Wled {
    pub fn new(
        index: usize,
        target: SocketAddr,
        protocol: Protocol,
        leds: usize,
        timeout_s: u8,
        offset: usize,
    ) -> Self {
        Self {
            name: format!("lights:wled:{}", index + 1),
            target,
            protocol,
            leds,
            timeout_s,
            offset,
            socket: LazySocket::new(true, None),
            packet: Vec::with_capacity(4 + 3 * DRGB_MAX_LEDS),
        }
    }
}

impl Transport for Wled {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> String {
        self.target.to_string()
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let rgb = match frame.get(self.offset..self.offset + 3) {
            Some(c) => [c[0], c[1], c[2]],
            None => return Err(io::Error::other("frame too short for this strip")),
        };
        match self.protocol {
            Protocol::Drgb => {
                encode_drgb(self.timeout_s, rgb, self.leds, &mut self.packet);
                self.socket.send_to(&self.packet, &self.target)
            }
            Protocol::Dnrgb => {
                let mut start = 0;
                let mut result = Ok(());
                while start < self.leds {
                    let n = (self.leds - start).min(DNRGB_MAX_LEDS);
                    encode_dnrgb(self.timeout_s, start as u16, rgb, n, &mut self.packet);
                    if let Err(e) = self.socket.send_to(&self.packet, &self.target) {
                        result = Err(e);
                    }
                    start += n;
                }
                result
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_carry_mode_timeout_and_colours() {
        let mut p = Vec::new();
        encode_drgb(2, [10, 20, 30], 2, &mut p);
        assert_eq!(p, [2, 2, 10, 20, 30, 10, 20, 30]);
        encode_dnrgb(255, 489, [1, 2, 3], 1, &mut p);
        assert_eq!(p, [4, 255, 1, 233, 1, 2, 3]);
    }
}
