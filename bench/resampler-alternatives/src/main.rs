//! What earshotd's resampler and FFT were chosen against (bench/resampler.md).
//!
//!   rs KIND FROM SECONDS [TAPS WINDOW CUTOFF]   resample SECONDS of noise at FROM Hz to 22050 Hz
//!       KIND: earshot (device/src/capture/resample.rs, compiled in here)
//!             fft (rubato's synchronous FFT resampler, earshotd's until December 2026)
//!             sinc (rubato's sinc resampler, exact phases: oversampling = the ratio's numerator)
//!   gen FROM SECONDS                            only make the noise (subtract it)
//!   fft micro|real N                            N real FFTs of 2048 points
//!   quality KIND FROM [TAPS WINDOW CUTOFF]      passband 0-8 kHz and aliasing into it
//!
//! Counted as in bench/run.sh: (count(rs .. 11) - count(rs .. 1)) / 10 per second of input.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Indexing, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};
use std::hint::black_box;

// earshotd's resampler, with the two names it takes from the daemon.
#[path = "../../../device/src/capture/resample.rs"]
#[allow(dead_code)]
mod resample;
mod frontend {
    pub const BANDS_FMAX_HZ: f64 = 8000.0;
}
#[derive(Debug)]
#[allow(dead_code)]
enum CaptureError {
    Resample { from_hz: u32, message: String },
}

/// earshotd's resampler behind rubato's calls used here.
struct Earshot(resample::MonoResampler, Vec<f32>);

const TO: usize = 22050;
const CHUNK: usize = 1024;

fn noise(n: usize) -> Vec<f32> {
    let mut s: u32 = 12345;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

enum Any {
    Rubato(Box<dyn Resampler<f32>>),
    Earshot(Earshot),
}

impl Any {
    fn delay(&self) -> usize {
        match self {
            Any::Rubato(r) => r.output_delay(),
            Any::Earshot(_) => 0,
        }
    }
}

fn resampler(args: &[String], from: usize) -> Any {
    if args[0] == "earshot" {
        let r = resample::MonoResampler::new(from as u32, TO as u32).unwrap();
        return Any::Earshot(Earshot(r, Vec::new()));
    }
    Any::Rubato(match args[0].as_str() {
        "fft" => Box::new(Fft::<f32>::new(from, TO, CHUNK, 1, 1, FixedSync::Input).unwrap()),
        "sinc" => {
            let window = match args[2].as_str() {
                "blackman2" => WindowFunction::Blackman2,
                "blackmanharris2" => WindowFunction::BlackmanHarris2,
                _ => WindowFunction::BlackmanHarris,
            };
            let p = SincInterpolationParameters {
                sinc_len: args[1].parse().unwrap(),
                f_cutoff: args[3].parse().unwrap(),
                oversampling_factor: TO / gcd(from, TO),
                interpolation: SincInterpolationType::Nearest,
                window,
            };
            let ratio = TO as f64 / from as f64;
            Box::new(Async::<f32>::new_sinc(ratio, 1.0, &p, CHUNK, 1, FixedAsync::Input).unwrap())
        }
        k => panic!("unknown resampler {k}"),
    })
}

fn run(r: &mut Any, x: &[f32]) -> Vec<f32> {
    let r = match r {
        Any::Rubato(r) => r.as_mut(),
        Any::Earshot(Earshot(e, out)) => {
            for c in x.chunks_exact(CHUNK) {
                e.process(c, out).unwrap();
            }
            return std::mem::take(out);
        }
    };
    let mut out = Vec::new();
    let mut buf = vec![0f32; r.output_frames_max()];
    for c in x.chunks_exact(CHUNK) {
        let input = InterleavedSlice::new(c, 1, CHUNK).unwrap();
        let cap = buf.len();
        let mut o = InterleavedSlice::new_mut(&mut buf[..], 1, cap).unwrap();
        let idx = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: None,
        };
        let (_, n) = r.process_into_buffer(&input, &mut o, Some(&idx)).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    match a[0].as_str() {
        "gen" => {
            let x = noise(a[1].parse::<usize>().unwrap() * a[2].parse::<usize>().unwrap());
            println!("{}", black_box(x.iter().sum::<f32>()));
        }
        "fft" => {
            let n: usize = a[2].parse().unwrap();
            let x = noise(2048);
            let mut acc = 0f32;
            if a[1] == "micro" {
                for _ in 0..n {
                    let mut b = [0f32; 2048];
                    b.copy_from_slice(&x);
                    acc += microfft::real::rfft_2048(&mut b)[5].re;
                }
            } else {
                let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(2048);
                let (mut i, mut o, mut s) = (
                    fft.make_input_vec(),
                    fft.make_output_vec(),
                    fft.make_scratch_vec(),
                );
                for _ in 0..n {
                    i.copy_from_slice(&x);
                    fft.process_with_scratch(&mut i, &mut o, &mut s).unwrap();
                    acc += o[5].re;
                }
            }
            println!("{acc}");
        }
        "rs" => {
            let from: usize = a[2].parse().unwrap();
            let secs: usize = a[3].parse().unwrap();
            let mut r = resampler(&[&a[1..2], &a[4..]].concat(), from);
            let y = run(&mut r, &noise(from * secs));
            println!("{} {}", y.len(), black_box(y.iter().sum::<f32>()));
        }
        "quality" => {
            let from: usize = a[2].parse().unwrap();
            let spec = [&a[1..2], &a[3..]].concat();
            let (mut pass_lo, mut pass_hi, mut alias, mut alias_hz) = (0f64, 0f64, -300f64, 0.0);
            let mut hz = 50.0f64;
            while hz < from as f64 / 2.0 - 100.0 {
                let mut r = resampler(&spec, from);
                let x: Vec<f32> = (0..from * 2)
                    .map(|i| {
                        (2.0 * std::f64::consts::PI * hz * i as f64 / from as f64).sin() as f32
                    })
                    .collect();
                let y = run(&mut r, &x);
                let d = r.delay() + 4096;
                let seg = &y[d..d + 16384];
                let rms = (seg.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>()
                    / seg.len() as f64)
                    .sqrt();
                let db = 20.0 * (rms * 2f64.sqrt()).log10();
                let lands = (hz - TO as f64 * (hz / TO as f64).round()).abs();
                if hz <= 8000.0 {
                    pass_lo = pass_lo.min(db);
                    pass_hi = pass_hi.max(db);
                } else if lands <= 8000.0 && db > alias {
                    (alias, alias_hz) = (db, hz);
                }
                hz *= 1.02;
            }
            println!("0-8 kHz {pass_lo:+.3}..{pass_hi:+.3} dB; aliasing into 0-8 kHz at most {alias:.1} dB ({alias_hz:.0} Hz)");
        }
        c => panic!("unknown command {c}"),
    }
}
