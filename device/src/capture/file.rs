//! Audio files through symphonia (wav, flac, mp3, ogg/vorbis), gapless, mixed
//! down to mono and resampled to the model rate.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::resample::MonoResampler;
use super::{AudioSource, CaptureError, Read};
use crate::frontend::SAMPLE_RATE_HZ;
use crate::Shutdown;

/// Samples delivered per `read` (about 0.2 s), so that pacing and shutdown stay responsive.
const BLOCK: usize = 4096;

/// A decoded file, read packet by packet.
pub struct FileSource {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    resampler: MonoResampler,
    interleaved: Option<SampleBuffer<f32>>,
    mono: Vec<f32>,
    /// Packets that failed to decode and were skipped.
    pub skipped_packets: u64,
    done: bool,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let format_err = |message: String| CaptureError::FileFormat {
            path: path.to_path_buf(),
            message,
        };
        let file = File::open(path).map_err(|source| CaptureError::FileOpen {
            path: path.to_path_buf(),
            source,
        })?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(format_err("it is a directory".into()));
        }
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let options = FormatOptions {
            enable_gapless: true,
            ..Default::default()
        };
        let probed = symphonia::default::get_probe()
            .format(&hint, mss, &options, &MetadataOptions::default())
            .map_err(|e| format_err(e.to_string()))?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| format_err("no audio track".into()))?;
        let rate = track
            .codec_params
            .sample_rate
            .ok_or_else(|| format_err("the audio track has no sample rate".into()))?;
        let track_id = track.id;
        let decoder = symphonia::default::get_codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| format_err(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            format,
            decoder,
            track_id,
            resampler: MonoResampler::new(rate, SAMPLE_RATE_HZ)?,
            interleaved: None,
            mono: Vec::new(),
            skipped_packets: 0,
            done: false,
        })
    }

    /// Decodes the whole file (offline helpers and tests).
    pub fn read_all(path: &Path) -> Result<Vec<f32>, CaptureError> {
        let mut src = Self::open(path)?;
        let mut out = Vec::new();
        let never = Shutdown::new();
        while src.read(&mut out, &never)? == Read::Audio {}
        Ok(out)
    }

    /// Decodes the next packet of our track into `self.mono`; false at the end.
    fn decode_next(&mut self) -> Result<bool, CaptureError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(false)
                }
                Err(SymError::ResetRequired) => return Ok(false),
                Err(e) => {
                    return Err(CaptureError::FileDecode {
                        path: self.path.clone(),
                        message: e.to_string(),
                    })
                }
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                    // A damaged packet: skip it, as players do.
                    self.skipped_packets += 1;
                    continue;
                }
                Err(e) => {
                    return Err(CaptureError::FileDecode {
                        path: self.path.clone(),
                        message: e.to_string(),
                    })
                }
            };
            let spec = *decoded.spec();
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            let channels = spec.channels.count().max(1);
            let buf = match &mut self.interleaved {
                Some(b) if b.capacity() >= decoded.capacity() * channels => b,
                slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
            };
            buf.copy_interleaved_ref(decoded);
            self.mono.clear();
            self.mono.extend(
                buf.samples()
                    .chunks_exact(channels)
                    .map(|frame| frame.iter().sum::<f32>() / channels as f32),
            );
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
            return Ok(Read::End);
        }
        let start = out.len();
        while out.len() - start < BLOCK {
            if !self.decode_next()? {
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
