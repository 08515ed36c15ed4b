//! FLAC metadata that the decoder must not read. symphonia 0.5 reads a
//! PICTURE or VORBIS_COMMENT block by allocating what the length fields inside
//! it declare, before reading: a 24-byte file whose picture claims 4 GiB
//! aborted earshotd wherever that allocation fails (a Pi without the memory;
//! found by fuzzing, `fuzz/fuzz_targets/audio_file.rs`). earshotd uses neither
//! tags nor pictures, so those blocks are handed on as PADDING, which the
//! decoder skips by their (at most 16 MiB) block length.

use std::io::{self, Read};

const PADDING: u8 = 1;
const VORBIS_COMMENT: u8 = 4;
const PICTURE: u8 = 6;

/// Whether `head` starts a native FLAC stream.
pub fn is_flac(head: &[u8]) -> bool {
    head.starts_with(b"fLaC")
}

/// Passes a FLAC stream through, rewriting the type of its comment and
/// picture blocks to PADDING as their headers go by; no buffering, so a pipe
/// is not held up. Everything after the last metadata block is untouched.
pub struct FlacGuard<R> {
    inner: R,
    /// Bytes passed through so far.
    pos: u64,
    /// Where the block header being read starts.
    header_at: u64,
    /// Header bytes seen so far, and how many.
    header: [u8; 4],
    have: usize,
    done: bool,
}

impl<R: Read> FlacGuard<R> {
    /// `inner` must start at the `fLaC` marker.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            pos: 0,
            header_at: 4,
            header: [0; 4],
            have: 0,
            done: false,
        }
    }

    fn scan(&mut self, chunk: &mut [u8]) {
        let start = self.pos;
        self.pos += chunk.len() as u64;
        while !self.done {
            let at = self.header_at + self.have as u64;
            if at >= self.pos {
                return;
            }
            let Ok(i) = usize::try_from(at - start) else {
                return;
            };
            if self.have == 0 {
                let kind = chunk[i] & 0x7f;
                if kind == VORBIS_COMMENT || kind == PICTURE {
                    chunk[i] = (chunk[i] & 0x80) | PADDING;
                }
            }
            self.header[self.have] = chunk[i];
            self.have += 1;
            if self.have == 4 {
                let len = u32::from_be_bytes([0, self.header[1], self.header[2], self.header[3]]);
                // the decoder reads blocks up to the same flag, so both agree on the layout
                self.done = self.header[0] & 0x80 != 0;
                self.header_at += 4 + u64::from(len);
                self.have = 0;
            }
        }
    }
}

impl<R: Read> Read for FlacGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.done {
            self.scan(&mut buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAMINFO: u8 = 0;

    /// A FLAC stream's start: marker, then blocks of (type, body), the last flagged.
    fn flac(blocks: &[(u8, Vec<u8>)], audio: &[u8]) -> Vec<u8> {
        let mut out = b"fLaC".to_vec();
        for (k, (kind, body)) in blocks.iter().enumerate() {
            let last = if k + 1 == blocks.len() { 0x80 } else { 0 };
            out.push(last | kind);
            out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(body);
        }
        out.extend_from_slice(audio);
        out
    }

    fn through(bytes: &[u8], chunk: usize) -> Vec<u8> {
        // reads in `chunk`-sized pieces, so headers straddle read boundaries
        let mut guard = FlacGuard::new(io::Cursor::new(bytes.to_vec()));
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = guard.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn comment_and_picture_blocks_become_padding_and_nothing_else_changes() {
        let picture = [6u32.to_be_bytes(), u32::MAX.to_be_bytes()].concat(); // claims 4 GiB
        let input = flac(
            &[
                (STREAMINFO, vec![7; 34]),
                (VORBIS_COMMENT, vec![0xff; 8]),
                (3, vec![1; 18]), // a seek table stays
                (PICTURE, picture),
            ],
            &[PICTURE, 0xff, 0xf8, 0x12],
        );
        let mut want = input.clone();
        want[4 + 4 + 34] = PADDING;
        want[4 + 4 + 34 + 4 + 8 + 4 + 18] = 0x80 | PADDING;
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(through(&input, chunk), want, "reads of {chunk} bytes");
        }
    }

    #[test]
    fn truncated_or_endless_metadata_passes_through_without_panic() {
        for bytes in [
            b"fLaC".to_vec(),
            b"fLaC\x06\xff".to_vec(),
            flac(&[(PICTURE, vec![0; 3])], &[])[..9].to_vec(),
            b"fLaC\x7f\xff\xff\xff".to_vec(),
        ] {
            let out = through(&bytes, 3);
            assert_eq!(out.len(), bytes.len());
        }
    }
}
