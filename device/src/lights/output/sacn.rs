//! sACN / ANSI E1.31 data packets (our own small encoder): unicast to a
//! node, or multicast to 239.255.{hi}.{lo} per universe; a priority, a
//! sequence number per universe, and the stream-terminated option on close.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use super::{DmxLayout, LazySocket, Transport};

/// sACN's UDP port.
pub const PORT: u16 = 5568;
/// Bytes of a data packet carrying 512 slots.
pub const PACKET_LEN: usize = 638;
/// Options bit: the source stops sending this universe.
const STREAM_TERMINATED: u8 = 0x40;
/// E1.31 asks for three terminated packets.
const TERMINATE_REPEATS: usize = 3;

/// The multicast group of `universe`.
pub fn multicast_addr(universe: u16) -> SocketAddr {
    let [hi, lo] = universe.to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(239, 255, hi, lo), PORT))
}

/// One data packet.
pub struct Header<'a> {
    pub cid: &'a [u8; 16],
    pub source_name: &'a str,
    pub priority: u8,
    pub sequence: u8,
    pub options: u8,
    pub universe: u16,
}

fn flags_length(len: usize) -> [u8; 2] {
    (0x7000u16 | (len as u16 & 0x0fff)).to_be_bytes()
}

/// Encodes a data packet with start code 0 and 512 slots.
pub fn encode(h: &Header, dmx: &[u8; 512], out: &mut [u8; PACKET_LEN]) {
    out.fill(0);
    // Root layer
    out[0..2].copy_from_slice(&0x0010u16.to_be_bytes());
    out[4..16].copy_from_slice(b"ASC-E1.17\0\0\0");
    out[16..18].copy_from_slice(&flags_length(PACKET_LEN - 16));
    out[18..22].copy_from_slice(&4u32.to_be_bytes()); // VECTOR_ROOT_E131_DATA
    out[22..38].copy_from_slice(h.cid);
    // Framing layer
    out[38..40].copy_from_slice(&flags_length(PACKET_LEN - 38));
    out[40..44].copy_from_slice(&2u32.to_be_bytes()); // VECTOR_E131_DATA_PACKET
    let name = h.source_name.as_bytes();
    let n = name.len().min(63); // null-terminated within 64 bytes
    out[44..44 + n].copy_from_slice(&name[..n]);
    out[108] = h.priority;
    // 109..111: synchronisation address 0 (none)
    out[111] = h.sequence;
    out[112] = h.options;
    out[113..115].copy_from_slice(&h.universe.to_be_bytes());
    // DMP layer
    out[115..117].copy_from_slice(&flags_length(PACKET_LEN - 115));
    out[117] = 0x02; // VECTOR_DMP_SET_PROPERTY
    out[118] = 0xa1; // address and data type
    out[119..121].copy_from_slice(&0u16.to_be_bytes()); // first property address
    out[121..123].copy_from_slice(&1u16.to_be_bytes()); // address increment
    out[123..125].copy_from_slice(&513u16.to_be_bytes()); // start code + 512 slots
    out[125] = 0; // start code: dimmer data
    out[126..].copy_from_slice(dmx);
}

/// A stable CID for a source name on this host, so that receivers see the
/// same source across restarts (E1.31 wants a CID per source, for good).
pub fn cid_for(source_name: &str) -> [u8; 16] {
    use sha2::Digest;
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("earshot-sacn\0{}\0{source_name}", host.trim()));
    let mut cid = [0u8; 16];
    cid.copy_from_slice(&digest[..16]);
    cid[6] = (cid[6] & 0x0f) | 0x50; // a name-based UUID (version 5 layout)
    cid[8] = (cid[8] & 0x3f) | 0x80;
    cid
}

/// Where sACN goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Unicast(SocketAddr),
    Multicast,
}

/// Sends every DMX universe as sACN.
pub struct Sacn {
    destination: Destination,
    layout: DmxLayout,
    socket: LazySocket,
    cid: [u8; 16],
    source_name: String,
    priority: u8,
    sequences: Vec<u8>,
    dmx: [u8; 512],
    packet: Box<[u8; PACKET_LEN]>,
    last_frame: Vec<u8>,
}

impl Sacn {
    pub fn new(
        destination: Destination,
        layout: DmxLayout,
        source_name: &str,
        priority: u8,
        multicast_ttl: u32,
    ) -> Self {
        let n = layout.universes.len();
        Self {
            destination,
            layout,
            socket: LazySocket::new(false, Some(multicast_ttl)),
            cid: cid_for(source_name),
            source_name: source_name.to_string(),
            priority,
            sequences: vec![0; n],
            dmx: [0; 512],
            packet: Box::new([0; PACKET_LEN]),
            last_frame: Vec::new(),
        }
    }

    fn send_all(&mut self, frame: &[u8], options: u8) -> io::Result<()> {
        let mut result = Ok(());
        for u in 0..self.layout.universes.len() {
            self.layout.fill(u, frame, &mut self.dmx);
            let universe = self.layout.universes[u].universe;
            self.sequences[u] = self.sequences[u].wrapping_add(1);
            let header = Header {
                cid: &self.cid,
                source_name: &self.source_name,
                priority: self.priority,
                sequence: self.sequences[u],
                options,
                universe,
            };
            encode(&header, &self.dmx, &mut self.packet);
            let to = match self.destination {
                Destination::Unicast(a) => a,
                Destination::Multicast => multicast_addr(universe),
            };
            if let Err(e) = self.socket.send_to(&self.packet[..], &to) {
                result = Err(e);
            }
        }
        result
    }
}

impl Transport for Sacn {
    fn name(&self) -> &str {
        "lights:sacn"
    }

    fn target(&self) -> String {
        match self.destination {
            Destination::Unicast(a) => a.to_string(),
            Destination::Multicast => "multicast 239.255.x.y:5568".into(),
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.last_frame.clear();
        self.last_frame.extend_from_slice(frame);
        self.send_all(frame, 0)
    }

    /// Repeats the last values with the stream-terminated bit, so receivers
    /// drop this source at once instead of waiting 2.5 s for it.
    fn terminate(&mut self) -> io::Result<()> {
        let frame = std::mem::take(&mut self.last_frame);
        let mut result = Ok(());
        for _ in 0..TERMINATE_REPEATS {
            if let Err(e) = self.send_all(&frame, STREAM_TERMINATED) {
                result = Err(e);
            }
        }
        self.last_frame = frame;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_packet_layers_have_their_lengths_and_vectors() {
        let cid = cid_for("earshot");
        let mut dmx = [0u8; 512];
        dmx[0] = 255;
        dmx[511] = 7;
        let mut p = [0u8; PACKET_LEN];
        let h = Header {
            cid: &cid,
            source_name: "earshot",
            priority: 100,
            sequence: 9,
            options: 0,
            universe: 258,
        };
        encode(&h, &dmx, &mut p);
        assert_eq!(&p[4..16], b"ASC-E1.17\0\0\0");
        assert_eq!(u16::from_be_bytes([p[16], p[17]]), 0x7000 | 622);
        assert_eq!(u16::from_be_bytes([p[38], p[39]]), 0x7000 | 600);
        assert_eq!(u16::from_be_bytes([p[115], p[116]]), 0x7000 | 523);
        assert_eq!(&p[44..51], b"earshot");
        assert_eq!((p[108], p[111], p[112]), (100, 9, 0));
        assert_eq!(u16::from_be_bytes([p[113], p[114]]), 258);
        assert_eq!((p[125], p[126], p[637]), (0, 255, 7));
        assert_eq!(multicast_addr(258).to_string(), "239.255.1.2:5568");
        assert_eq!(cid_for("earshot"), cid, "stable across calls");
    }
}
