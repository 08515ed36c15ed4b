//! Art-Net 4 ArtDmx (our own small encoder): one packet per universe per
//! frame, 512 slots, a sequence number per universe so nodes can reorder.

use std::io;
use std::net::SocketAddr;

use super::{DmxLayout, LazySocket, Transport};

/// Art-Net's UDP port.
pub const PORT: u16 = 6454;
const HEADER: usize = 18;

/// `ArtDmx` for port-address `universe` (15 bits) with `data` (2..=512 slots, even).
pub fn encode(sequence: u8, universe: u16, data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"Art-Net\0");
    out.extend_from_slice(&0x5000u16.to_le_bytes()); // OpDmx
    out.extend_from_slice(&[0, 14]); // protocol version 14
    out.push(sequence);
    out.push(0); // physical input port
    out.push((universe & 0xff) as u8); // SubUni
    out.push(((universe >> 8) & 0x7f) as u8); // Net
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    debug_assert_eq!(out.len(), HEADER + data.len());
}

/// Sends every DMX universe to one Art-Net node (or a broadcast address).
pub struct ArtNet {
    target: SocketAddr,
    layout: DmxLayout,
    socket: LazySocket,
    /// 1..=255; 0 would tell the node not to reorder.
    sequence: u8,
    dmx: [u8; 512],
    packet: Vec<u8>,
}

impl ArtNet {
    pub fn new(target: SocketAddr, layout: DmxLayout) -> Self {
        Self {
            target,
            layout,
            socket: LazySocket::new(true, None),
            sequence: 0,
            dmx: [0; 512],
            packet: Vec::with_capacity(HEADER + 512),
        }
    }
}

impl Transport for ArtNet {
    fn name(&self) -> &str {
        "lights:artnet"
    }

    fn target(&self) -> String {
        self.target.to_string()
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.sequence = self.sequence % 255 + 1;
        let mut result = Ok(());
        for u in 0..self.layout.universes.len() {
            self.layout.fill(u, frame, &mut self.dmx);
            // Fixtures count universes from 1, as sACN does; Art-Net from 0.
            let universe = self.layout.universes[u].universe - 1;
            encode(self.sequence, universe, &self.dmx, &mut self.packet);
            if let Err(e) = self.socket.send_to(&self.packet, &self.target) {
                result = Err(e);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artdmx_header_is_as_the_spec_draws_it() {
        let mut p = Vec::new();
        encode(7, 0x0123, &[1, 2, 3, 4], &mut p);
        assert_eq!(&p[..8], b"Art-Net\0");
        assert_eq!(&p[8..10], &[0x00, 0x50]);
        assert_eq!(&p[10..12], &[0, 14]);
        assert_eq!(p[12], 7);
        assert_eq!(&p[14..16], &[0x23, 0x01]);
        assert_eq!(&p[16..18], &[0, 4]);
        assert_eq!(&p[18..], &[1, 2, 3, 4]);
    }
}
