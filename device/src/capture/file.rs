//! Audio files through symphonia (wav, flac, mp3, ogg/vorbis), gapless, mixed
//! down to mono and resampled to the model rate.

use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use super::resample::MonoResampler;
use super::{AudioSource, CaptureError, Read};
use crate::frontend::SAMPLE_RATE_HZ;
use crate::Shutdown;

/// Samples delivered per `read` (about 0.2 s), so that pacing and shutdown stay responsive.
const BLOCK: usize = 4096;
/// Sample rates accepted from files: telephone audio to high-resolution studio audio.
/// Outside this range a header is damaged or hostile (0 Hz panicked the decoder,
/// 1 Hz made the resampler allocate a gigabyte, 2^31 Hz never finished).
pub const MIN_RATE_HZ: u32 = 8_000;
pub const MAX_RATE_HZ: u32 = 384_000;
/// Damaged packets in a row after which a file is given up as not audio.
const MAX_BAD_IN_A_ROW: u64 = 1000;
/// Log the first damaged packet, then every this many.
const SKIPPED_LOG_EVERY: u64 = 1000;
/// How far into a WAV file its `fmt ` chunk is looked for before decoding.
const WAV_HEADER_SCAN: usize = 64 * 1024;

/// The sample rate a RIFF/WAVE header declares, if `head` starts one and has a `fmt ` chunk.
fn wav_declared_rate(head: &[u8]) -> Option<u32> {
    if head.len() < 12 || &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    while at.checked_add(8)? <= head.len() {
        let id = &head[at..at + 4];
        let len = u32::from_le_bytes(head[at + 4..at + 8].try_into().ok()?) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let rate = head.get(body + 4..body + 8)?;
            return Some(u32::from_le_bytes(rate.try_into().ok()?));
        }
        // chunks are padded to an even length
        at = body.checked_add(len)?.checked_add(len % 2)?;
    }
    None
}

/// The start of a stream, up to the end of a WAV header's `fmt ` chunk (at
/// most [`WAV_HEADER_SCAN`] bytes), or its first 12 bytes when it is not a
/// WAV: no more than that, so that a live pipe is not held up.
fn read_wav_head(r: &mut impl std::io::Read) -> std::io::Result<Vec<u8>> {
    fn fill(r: &mut impl std::io::Read, head: &mut Vec<u8>, n: usize) -> std::io::Result<()> {
        while head.len() < n {
            if r.by_ref().take((n - head.len()) as u64).read_to_end(head)? == 0 {
                break;
            }
        }
        Ok(())
    }
    let mut head = Vec::new();
    fill(r, &mut head, 12)?;
    if head.len() < 12 || &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(head);
    }
    let mut at = 12usize;
    while at + 8 <= WAV_HEADER_SCAN {
        fill(r, &mut head, at + 8)?;
        if head.len() < at + 8 {
            break;
        }
        let len =
            u32::from_le_bytes([head[at + 4], head[at + 5], head[at + 6], head[at + 7]]) as usize;
        if &head[at..at + 4] == b"fmt " {
            fill(r, &mut head, (at + 16).min(WAV_HEADER_SCAN))?;
            break;
        }
        at = at
            .saturating_add(8)
            .saturating_add(len)
            .saturating_add(len % 2);
        fill(r, &mut head, at.min(WAV_HEADER_SCAN))?;
    }
    Ok(head)
}

/// Rejects a sample rate outside [`MIN_RATE_HZ`, `MAX_RATE_HZ`].
fn check_rate(path: &Path, rate: u32) -> Result<(), CaptureError> {
    if (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate) {
        return Ok(());
    }
    Err(CaptureError::FileFormat {
        path: path.to_path_buf(),
        message: format!(
            "its sample rate is {rate} Hz; earshotd reads {} to {} kHz, so the header is \
             damaged or the file is not audio",
            MIN_RATE_HZ / 1000,
            MAX_RATE_HZ / 1000
        ),
    })
}

/// A decoded file, read packet by packet.
pub struct FileSource {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    resampler: MonoResampler,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
    /// Packets that failed to decode and were skipped.
    pub skipped_packets: u64,
    /// Damaged packets since the last good one.
    bad_in_a_row: u64,
    done: bool,
    /// A named pipe: its end means the writer went away, not the end of the music.
    stream: bool,
}

/// Whether `path` is a named pipe (FIFO), following symlinks by name only:
/// `/dev/stdin` and `/proc/self/fd/N` (a shell's pipe) end as files do.
fn is_named_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::canonicalize(path)
        .and_then(std::fs::symlink_metadata)
        .is_ok_and(|m| m.file_type().is_fifo())
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Self::open_notify(path, &mut || {})
    }

    /// [`open`](Self::open), calling `connected` once the system has opened
    /// the file: a named pipe waits for a writer before that (an input that
    /// is absent), and for its data after it (an input that may stall).
    pub fn open_notify(path: &Path, connected: &mut dyn FnMut()) -> Result<Self, CaptureError> {
        let format_err = |message: String| CaptureError::FileFormat {
            path: path.to_path_buf(),
            message,
        };
        let mut file = File::open(path).map_err(|source| CaptureError::FileOpen {
            path: path.to_path_buf(),
            source,
        })?;
        connected();
        let meta = file.metadata().ok();
        if meta.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(format_err("it is a directory".into()));
        }
        // The WAV reader trusts the header's rate (0 Hz panics inside it), so
        // look before handing the audio over; other formats are checked later.
        let head = read_wav_head(&mut file).map_err(|source| CaptureError::FileOpen {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(rate) = wav_declared_rate(&head) {
            check_rate(path, rate)?;
        }
        let media: Box<dyn MediaSource> = if meta.as_ref().is_some_and(|m| m.is_file()) {
            // a file: back to its start, and it stays seekable
            file.seek(SeekFrom::Start(0))
                .map_err(|source| CaptureError::FileOpen {
                    path: path.to_path_buf(),
                    source,
                })?;
            Box::new(file)
        } else {
            // a pipe or a device: what was read, then the rest
            Box::new(ReadOnlySource::new(std::io::Cursor::new(head).chain(file)))
        };
        let mut source = Self::decode(path, media)?;
        source.stream = is_named_fifo(path);
        Ok(source)
    }

    /// A named pipe's stream ended: its writer closed it, or the audio it
    /// announced is over; the next writer is awaited.
    fn writer_gone(&self) -> CaptureError {
        CaptureError::Lost {
            what: self.label(),
            message: "the stream in the pipe ended".into(),
        }
    }

    /// Audio held in memory (the built-in demo music); `name` stands for
    /// the path in labels and errors, and its extension hints the format.
    pub fn from_bytes<T>(name: &str, bytes: T) -> Result<Self, CaptureError>
    where
        T: AsRef<[u8]> + Send + Sync + 'static,
    {
        let path = Path::new(name);
        let head = &bytes.as_ref()[..bytes.as_ref().len().min(WAV_HEADER_SCAN)];
        if let Some(rate) = wav_declared_rate(head) {
            check_rate(path, rate)?;
        }
        Self::decode(path, Box::new(std::io::Cursor::new(bytes)))
    }

    fn decode(path: &Path, media: Box<dyn MediaSource>) -> Result<Self, CaptureError> {
        let format_err = |message: String| CaptureError::FileFormat {
            path: path.to_path_buf(),
            message,
        };
        let mss = MediaSourceStream::new(media, Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| format_err(e.to_string()))?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| format_err("no audio track".into()))?;
        let Some(CodecParameters::Audio(params)) = &track.codec_params else {
            return Err(format_err("the audio track has no codec parameters".into()));
        };
        let rate = params
            .sample_rate
            .ok_or_else(|| format_err("the audio track has no sample rate".into()))?;
        check_rate(path, rate)?;
        let track_id = track.id;
        // gapless by default: encoder delay and padding are trimmed
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| format_err(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            format,
            decoder,
            track_id,
            resampler: MonoResampler::new(rate, SAMPLE_RATE_HZ)?,
            interleaved: Vec::new(),
            mono: Vec::new(),
            skipped_packets: 0,
            bad_in_a_row: 0,
            done: false,
            stream: false,
        })
    }

    /// Decodes the whole file (offline helpers and tests).
    pub fn read_all(path: &Path) -> Result<Vec<f32>, CaptureError> {
        Self::open(path)?.read_to_end()
    }

    /// Every remaining sample.
    fn read_to_end(mut self) -> Result<Vec<f32>, CaptureError> {
        let mut out = Vec::new();
        let never = Shutdown::new();
        while self.read(&mut out, &never)? == Read::Audio {}
        Ok(out)
    }

    /// Decodes the next packet of our track into `self.mono`; false at the end.
    fn decode_next(&mut self) -> Result<bool, CaptureError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(false),
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(false)
                }
                Err(SymError::ResetRequired) => return Ok(false),
                // The medium failed (a disk, a network share): it may come back.
                Err(SymError::IoError(e)) => {
                    return Err(CaptureError::Lost {
                        what: self.label(),
                        message: e.to_string(),
                    })
                }
                Err(e) => {
                    return Err(CaptureError::FileDecode {
                        path: self.path.clone(),
                        message: e.to_string(),
                    })
                }
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                Err(e @ SymError::DecodeError(_)) | Err(e @ SymError::IoError(_)) => {
                    // A damaged packet: skip it, as players do, but not forever.
                    self.skipped_packets += 1;
                    self.bad_in_a_row += 1;
                    if self.bad_in_a_row >= MAX_BAD_IN_A_ROW {
                        return Err(CaptureError::FileDecode {
                            path: self.path.clone(),
                            message: format!(
                                "{MAX_BAD_IN_A_ROW} packets in a row are damaged ({e}); the \
                                 file is damaged or not audio"
                            ),
                        });
                    }
                    if self.skipped_packets == 1
                        || self.skipped_packets.is_multiple_of(SKIPPED_LOG_EVERY)
                    {
                        tracing::warn!(
                            "{}: {} damaged packets skipped so far ({e})",
                            self.path.display(),
                            self.skipped_packets
                        );
                    }
                    continue;
                }
                Err(e) => {
                    return Err(CaptureError::FileDecode {
                        path: self.path.clone(),
                        message: e.to_string(),
                    })
                }
            };
            self.bad_in_a_row = 0;
            if decoded.frames() == 0 {
                continue;
            }
            let channels = decoded.spec().channels().count().max(1);
            // reuses its capacity: no allocation once the largest packet was seen
            decoded.copy_to_vec_interleaved(&mut self.interleaved);
            self.mono.clear();
            if channels == 1 {
                self.mono.extend_from_slice(&self.interleaved);
            } else {
                let scale = 1.0 / channels as f32;
                self.mono.extend(
                    self.interleaved
                        .chunks_exact(channels)
                        .map(|frame| frame.iter().sum::<f32>() * scale),
                );
            }
            return Ok(true);
        }
    }
}

impl AudioSource for FileSource {
    fn label(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn read(&mut self, out: &mut Vec<f32>, _shutdown: &Shutdown) -> Result<Read, CaptureError> {
        if self.done {
            return if self.stream {
                Err(self.writer_gone())
            } else {
                Ok(Read::End)
            };
        }
        let start = out.len();
        while out.len() - start < BLOCK {
            if !self.decode_next()? {
                if self.stream {
                    self.done = true;
                    return if out.len() > start {
                        Ok(Read::Audio)
                    } else {
                        Err(self.writer_gone())
                    };
                }
                self.resampler.flush(out)?;
                self.done = true;
                if self.skipped_packets > 0 {
                    tracing::warn!(
                        "{}: skipped {} damaged packets",
                        self.path.display(),
                        self.skipped_packets
                    );
                }
                return Ok(if out.len() > start {
                    Read::Audio
                } else {
                    Read::End
                });
            }
            self.resampler.process(&self.mono, out)?;
        }
        Ok(Read::Audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(rate: u32, extra_chunk: bool) -> Vec<u8> {
        let mut h = b"RIFF\0\0\0\0WAVE".to_vec();
        if extra_chunk {
            h.extend_from_slice(b"LIST\x03\0\0\0abc\0");
        }
        h.extend_from_slice(b"fmt \x10\0\0\0\x01\0\x01\0");
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h
    }

    #[test]
    fn the_declared_wav_rate_is_found_behind_other_chunks() {
        assert_eq!(wav_declared_rate(&header(44_100, false)), Some(44_100));
        assert_eq!(wav_declared_rate(&header(0, true)), Some(0));
        assert_eq!(wav_declared_rate(b"fLaC...."), None);
        assert_eq!(wav_declared_rate(&header(7, false)[..20]), None);
        let mut huge = header(1, true);
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            wav_declared_rate(&huge),
            None,
            "a chunk length past the end"
        );
    }

    /// Tagged FLAC (comments, a cover picture) decodes whole, from a file and
    /// from memory alike (made by tests/fixtures/tagged_and_hostile.py).
    #[test]
    fn a_tagged_flac_with_a_picture_decodes_whole() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tone_tagged.flac");
        let bytes = std::fs::read(&path).unwrap();
        let from_memory = FileSource::from_bytes("x.flac", bytes)
            .unwrap()
            .read_to_end()
            .unwrap();
        let from_file = FileSource::read_all(&path).unwrap();
        assert_eq!(from_file, from_memory);
        // 1 s of a 440 Hz tone at amplitude 0.5, already at the model rate
        assert!(
            (22_000..=22_100).contains(&from_file.len()),
            "{}",
            from_file.len()
        );
        let rms = (from_file.iter().map(|x| x * x).sum::<f32>() / from_file.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.01, "rms {rms}");
    }

    #[test]
    fn rates_outside_8_to_384_khz_are_refused() {
        let p = Path::new("x.wav");
        for ok in [8_000, 22_050, 44_100, 48_000, 384_000] {
            assert!(check_rate(p, ok).is_ok(), "{ok}");
        }
        for bad in [0, 1, 7_999, 384_001, i32::MAX as u32] {
            let err = check_rate(p, bad).unwrap_err().to_string();
            assert!(err.starts_with("x.wav: "), "{err}");
            assert!(err.contains(&format!("sample rate is {bad} Hz")), "{err}");
            assert!(err.contains("8 to 384 kHz"), "{err}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Bytes that start like a WAV, FLAC, Ogg or MP3 file and go on at
        /// random are audio or a clear error, never a panic.
        #[test]
        fn damaged_files_of_every_format_are_audio_or_an_error(
            magic in proptest::sample::select(vec![
                &b"RIFF\x24\x08\0\0WAVEfmt "[..], b"fLaC\0\0\0\x22", b"OggS\0\x02", b"ID3\x03\0\0\0\0\0\0",
                b"\xff\xfb\x90\x64", b"",
            ]),
            name in proptest::sample::select(vec!["x.wav", "x.flac", "x.ogg", "x.mp3", "x"]),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..8192),
        ) {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&body);
            if let Ok(mut src) = FileSource::from_bytes(name, bytes) {
                let (mut out, never) = (Vec::new(), Shutdown::new());
                for _ in 0..32 {
                    if !matches!(src.read(&mut out, &never), Ok(Read::Audio)) {
                        break;
                    }
                }
            }
        }

        /// A damaged or hostile WAV header (any format, channel count, rate,
        /// alignment, bit depth or data length) is audio or a clear error,
        /// never a panic, however the bytes arrive (in memory or on a pipe).
        #[test]
        fn hostile_wav_headers_are_audio_or_an_error(
            format in proptest::prop_oneof![
                proptest::strategy::Just(1u16), proptest::strategy::Just(3), proptest::strategy::Just(0xFFFE),
                proptest::num::u16::ANY,
            ],
            channels in proptest::prop_oneof![0u16..3, proptest::num::u16::ANY],
            rate in proptest::prop_oneof![
                proptest::sample::select(vec![0u32, 1, 7_999, 8_000, 22_050, 44_100, 384_000, 384_001, u32::MAX]),
                proptest::num::u32::ANY,
            ],
            block_align in proptest::num::u16::ANY,
            bits in proptest::prop_oneof![proptest::sample::select(vec![0u16, 8, 16, 24, 32, 64]), proptest::num::u16::ANY],
            data_len in proptest::prop_oneof![proptest::sample::select(vec![0u32, u32::MAX]), 0u32..4096],
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
        ) {
            let mut wav = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
            wav.extend_from_slice(&format.to_le_bytes());
            wav.extend_from_slice(&channels.to_le_bytes());
            wav.extend_from_slice(&rate.to_le_bytes());
            wav.extend_from_slice(&rate.wrapping_mul(u32::from(block_align)).to_le_bytes());
            wav.extend_from_slice(&block_align.to_le_bytes());
            wav.extend_from_slice(&bits.to_le_bytes());
            wav.extend_from_slice(b"data");
            wav.extend_from_slice(&data_len.to_le_bytes());
            wav.extend_from_slice(&body);
            let never = Shutdown::new();
            let drain = |src: Result<FileSource, CaptureError>| {
                if let Ok(mut src) = src {
                    let mut out = Vec::new();
                    for _ in 0..32 {
                        if !matches!(src.read(&mut out, &never), Ok(Read::Audio)) {
                            break;
                        }
                    }
                }
            };
            drain(FileSource::from_bytes("hostile.wav", wav.clone()));
            // the pipe path: the header is read from a stream that cannot seek
            let head = read_wav_head(&mut std::io::Cursor::new(&wav)).unwrap();
            let rest = wav[head.len()..].to_vec();
            if wav_declared_rate(&head).is_none_or(|r| (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&r)) {
                let media = ReadOnlySource::new(std::io::Cursor::new(head).chain(std::io::Cursor::new(rest)));
                drain(FileSource::decode(Path::new("pipe"), Box::new(media)));
            }
        }
    }
}
