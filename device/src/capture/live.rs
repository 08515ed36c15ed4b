//! Live input through cpal (ALSA on Linux).
//!
//! The audio callback mixes each frame down to mono and pushes it into a
//! lock-free SPSC ring (rtrb); a full ring drops the sample and counts it.
//! The pipeline side pops from the ring and resamples to the model rate. A
//! device that disappears makes `read` fail with [`CaptureError::Lost`];
//! reopening it is the [`Supervisor`](super::Supervisor)'s job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamError};

use super::resample::MonoResampler;
use super::{AudioSource, CaptureError, Read};
use crate::frontend::SAMPLE_RATE_HZ;
use crate::health::Counters;
use crate::Shutdown;

/// How long `read` waits for audio before returning to check shutdown.
const POLL: Duration = Duration::from_millis(10);

/// An input device as `earshotd devices` lists it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub name: String,
    pub id: String,
    pub is_default: bool,
    /// e.g. "2 ch, 48000 Hz, f32", or why it could not be read.
    pub default_config: String,
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| "<unnamed>".into())
}

fn device_id(d: &cpal::Device) -> String {
    d.id().map(|id| id.to_string()).unwrap_or_default()
}

/// Lists the input devices of the default host.
pub fn list_devices() -> Result<Vec<DeviceInfo>, CaptureError> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().map(|d| device_id(&d));
    let devices = host.input_devices().map_err(|e| CaptureError::Devices {
        message: e.to_string(),
    })?;
    Ok(devices
        .map(|d| {
            let id = device_id(&d);
            DeviceInfo {
                name: device_name(&d),
                is_default: default_id.as_deref() == Some(id.as_str()),
                default_config: match d.default_input_config() {
                    Ok(c) => format!(
                        "{} ch, {} Hz, {}",
                        c.channels(),
                        c.sample_rate(),
                        c.sample_format()
                    ),
                    Err(e) => format!("no default config ({e})"),
                },
                id,
            }
        })
        .collect())
}

/// How an error lists a device: its name, except ALSA's `null` device,
/// whose description ("Discard all samples (playback) or generate zero
/// samples (capture)") is all a Pi without a microphone would list.
fn available_name(d: &cpal::Device) -> String {
    if device_id(d) == "alsa:null" {
        "null (ALSA's null device: silence only)".to_string()
    } else {
        device_name(d)
    }
}

/// Finds an input device by name, id, or (unique) case-insensitive substring.
fn find_device(name: &str) -> Result<cpal::Device, CaptureError> {
    let host = cpal::default_host();
    if name == "default" {
        return host
            .default_input_device()
            .ok_or_else(|| CaptureError::UnknownDevice {
                name: name.into(),
                available: vec![],
            });
    }
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| CaptureError::Devices {
            message: e.to_string(),
        })?
        .collect();
    if let Some(d) = devices.iter().find(|d| {
        let id = device_id(d);
        device_name(d) == name || id == name || id.split_once(':').map(|(_, n)| n) == Some(name)
    }) {
        return Ok(d.clone());
    }
    let needle = name.to_lowercase();
    let matches: Vec<&cpal::Device> = devices
        .iter()
        .filter(|d| device_name(d).to_lowercase().contains(&needle))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(CaptureError::UnknownDevice {
            name: name.into(),
            available: devices.iter().map(available_name).collect(),
        }),
    }
}

/// Counters the callbacks write; nothing else crosses into the audio thread.
#[derive(Debug, Default)]
struct Flags {
    lost: AtomicBool,
}

struct Open {
    stream: cpal::Stream,
    consumer: rtrb::Consumer<f32>,
    resampler: MonoResampler,
    flags: Arc<Flags>,
}

/// A live input device.
pub struct LiveSource {
    name: String,
    label: String,
    open: Open,
    scratch: Vec<f32>,
}

impl LiveSource {
    pub fn open(name: &str, ring_ms: u32, health: Arc<Counters>) -> Result<Self, CaptureError> {
        let device = find_device(name)?;
        let label = format!("alsa:{}", device_name(&device));
        let open = start(&device, name, ring_ms, &health)?;
        tracing::info!("capturing from {label}");
        Ok(Self {
            name: name.into(),
            label,
            open,
            scratch: Vec::with_capacity(SAMPLE_RATE_HZ as usize),
        })
    }
}

/// Where ALSA's device nodes are; a capture PCM is `pcmC<card>D<device>c`.
const DEV_SND: &str = "/dev/snd";

/// An open failure in the user's terms where the machine tells why: cpal's
/// own text ("the requested device is no longer available ... unplugged")
/// reads the same for a Pi without a microphone, one without permission,
/// and a wrong device name.
fn explain_open_failure(alsa_says: String, dev_snd: &std::path::Path) -> String {
    let capture_nodes = std::fs::read_dir(dev_snd).map(|entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("pcmC") && n.ends_with('c')
            })
            .count()
    });
    let why = match capture_nodes {
        Ok(0) => format!(
            "this machine has no audio input (no capture device in {}): connect a USB \
             microphone or sound card, then pick it with `earshotd devices`",
            dev_snd.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "this machine has no sound card ({} does not exist): connect a USB microphone \
             or sound card, then pick it with `earshotd devices`",
            dev_snd.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "{} is not readable: the user running earshotd must be in group `audio`",
            dev_snd.display()
        ),
        _ if alsa_says.contains("ermission denied") => {
            "the user running earshotd must be in group `audio`".to_string()
        }
        _ => "run `earshotd devices` to see the inputs, and check that the device is \
              plugged in and not used by another program"
            .to_string(),
    };
    format!("{why} (ALSA: {alsa_says})")
}

fn start(
    device: &cpal::Device,
    name: &str,
    ring_ms: u32,
    health: &Arc<Counters>,
) -> Result<Open, CaptureError> {
    let err = |message: String| CaptureError::Device {
        name: name.into(),
        message: explain_open_failure(message, std::path::Path::new(DEV_SND)),
    };
    let supported = device
        .default_input_config()
        .map_err(|e| err(format!("no usable input configuration: {e}")))?;
    let config = supported.config();
    let rate = config.sample_rate;
    let capacity = (u64::from(rate) * u64::from(ring_ms) / 1000).max(1024) as usize;
    let (producer, consumer) = rtrb::RingBuffer::<f32>::new(capacity);
    let flags = Arc::new(Flags::default());
    let channels = usize::from(config.channels).max(1);
    let stream = match supported.sample_format() {
        SampleFormat::I8 => build::<i8>(device, &config, channels, producer, health, &flags),
        SampleFormat::I16 => build::<i16>(device, &config, channels, producer, health, &flags),
        SampleFormat::I32 => build::<i32>(device, &config, channels, producer, health, &flags),
        SampleFormat::I64 => build::<i64>(device, &config, channels, producer, health, &flags),
        SampleFormat::U8 => build::<u8>(device, &config, channels, producer, health, &flags),
        SampleFormat::U16 => build::<u16>(device, &config, channels, producer, health, &flags),
        SampleFormat::U32 => build::<u32>(device, &config, channels, producer, health, &flags),
        SampleFormat::U64 => build::<u64>(device, &config, channels, producer, health, &flags),
        SampleFormat::F32 => build::<f32>(device, &config, channels, producer, health, &flags),
        SampleFormat::F64 => build::<f64>(device, &config, channels, producer, health, &flags),
        other => return Err(err(format!("sample format {other} is not supported"))),
    }
    .map_err(|e| err(format!("cannot open the input stream: {e}")))?;
    stream
        .play()
        .map_err(|e| err(format!("cannot start the input stream: {e}")))?;
    tracing::info!(
        "input {name:?}: {} ch, {rate} Hz, {}, ring {capacity} samples",
        config.channels,
        supported.sample_format()
    );
    Ok(Open {
        stream,
        consumer,
        resampler: MonoResampler::new(rate, SAMPLE_RATE_HZ)?,
        flags,
    })
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    mut producer: rtrb::Producer<f32>,
    health: &Arc<Counters>,
    flags: &Arc<Flags>,
) -> Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let dropped = Arc::clone(health);
    let errors = Arc::clone(health);
    let lost = Arc::clone(flags);
    let scale = 1.0 / channels as f32;
    device.build_input_stream(
        config,
        // The audio callback: no allocation, no locks, no logging. Mix down,
        // push, count what does not fit.
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            let mut lost_samples: u64 = 0;
            for frame in data.chunks_exact(channels) {
                let mono: f32 = frame.iter().map(|&s| f32::from_sample_(s)).sum::<f32>() * scale;
                if producer.push(mono).is_err() {
                    lost_samples += 1;
                }
            }
            if lost_samples > 0 {
                dropped
                    .dropped_frames
                    .fetch_add(lost_samples, Ordering::Relaxed);
            }
        },
        move |e: StreamError| match e {
            StreamError::BufferUnderrun => Counters::bump(&errors.xruns),
            StreamError::DeviceNotAvailable | StreamError::StreamInvalidated => {
                lost.lost.store(true, Ordering::Relaxed)
            }
            StreamError::BackendSpecific { .. } => Counters::bump(&errors.xruns),
        },
        None,
    )
}

impl AudioSource for LiveSource {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn read(&mut self, out: &mut Vec<f32>, shutdown: &Shutdown) -> Result<Read, CaptureError> {
        let deadline = Instant::now() + Duration::from_millis(200);
        let open = &mut self.open;
        loop {
            if shutdown.is_set() {
                return Ok(Read::Audio);
            }
            if open.flags.lost.load(Ordering::Relaxed) {
                let _ = open.stream.pause();
                return Err(CaptureError::Lost {
                    what: format!("{} (device {:?})", self.label, self.name),
                    message: "the device is no longer available (unplugged?)".into(),
                });
            }
            let n = open.consumer.slots();
            if n > 0 {
                self.scratch.clear();
                if let Ok(chunk) = open.consumer.read_chunk(n) {
                    let (a, b) = chunk.as_slices();
                    self.scratch.extend_from_slice(a);
                    self.scratch.extend_from_slice(b);
                    chunk.commit_all();
                }
                open.resampler.process(&self.scratch, out)?;
                return Ok(Read::Audio);
            }
            if Instant::now() > deadline {
                return Ok(Read::Audio);
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPAL_SAYS: &str = "no usable input configuration: The requested device is no \
                             longer available. For example, it has been unplugged.";

    #[test]
    fn open_failure_without_a_sound_card_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("snd");
        let m = explain_open_failure(CPAL_SAYS.into(), &missing);
        assert!(m.starts_with("this machine has no sound card"), "{m}");
        assert!(
            m.contains("`earshotd devices`") && m.contains(CPAL_SAYS),
            "{m}"
        );
        // A Pi with HDMI and headphone output but no microphone: playback nodes only.
        std::fs::create_dir(&missing).unwrap();
        for node in ["controlC0", "pcmC0D0p", "pcmC1D0p", "timer"] {
            std::fs::write(missing.join(node), b"").unwrap();
        }
        let m = explain_open_failure(CPAL_SAYS.into(), &missing);
        assert!(m.starts_with("this machine has no audio input"), "{m}");
    }

    #[test]
    fn open_failure_with_a_capture_device_points_at_the_list_or_the_group() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pcmC1D0c"), b"").unwrap();
        let m = explain_open_failure(CPAL_SAYS.into(), dir.path());
        assert!(m.starts_with("run `earshotd devices`"), "{m}");
        let m = explain_open_failure(
            "ALSA function 'snd_pcm_open' failed with error 'EACCES: Permission denied'".into(),
            dir.path(),
        );
        assert!(m.contains("group `audio`"), "{m}");
    }
}
