//! Per-hop costs of the daemon's stages, one thread: the front end for one
//! hop of audio, the streaming network (tract pulse of 31 frames + head,
//! f32 and int8), and the whole-window network it replaces. `bench/run.sh` runs this beside
//! onnxruntime and PyTorch (`bench/compare.py`) and prints one table.
//!
//! With `EARSHOT_BENCH_INFO=path`, also writes multiply-accumulates per hop
//! and per window and the plan's matmul kernels as JSON.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use earshot_device::config::Precision;
use earshot_device::frontend::{self, Frontend};
use earshot_device::model::{dir_source, Model};

const HOP_FRAMES: usize = 31;

fn model(p: Precision) -> Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(earshot_device::model::SHIPPED_ID);
    Model::load(&dir_source(dir), p).expect("the shipped model (models/SHIPPED) loads")
}

/// A deterministic, music-like signal.
fn audio(seconds: f32) -> Vec<f32> {
    (0..(seconds * 22050.0) as usize)
        .map(|i| {
            let t = i as f32 / 22050.0;
            0.2 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 330.0 * t).sin()
                + 0.05 * (2.0 * std::f32::consts::PI * 1760.0 * t * (1.0 + 0.01 * t)).sin()
        })
        .collect()
}

fn write_info() {
    let Some(path) = std::env::var_os("EARSHOT_BENCH_INFO") else {
        return;
    };
    let f32m = model(Precision::F32);
    let i8m = model(Precision::Int8);
    let w = f32m.window_frames();
    let info = serde_json::json!({
        "model_id": f32m.id(),
        "hop_frames": HOP_FRAMES,
        "stream_input_frames": HOP_FRAMES + f32m.receptive_field() - 1,
        "window_frames": w,
        "macs_per_pulse": f32m.macs_per_pulse(HOP_FRAMES).expect("macs"),
        "macs_per_hop": f32m.macs(HOP_FRAMES + f32m.receptive_field() - 1).expect("macs"),
        "macs_per_window": f32m.macs(w).expect("macs"),
        "metadata_macs_per_window": f32m.metadata().macs_per_window,
        "kernels_f32": f32m.matmul_kernels(HOP_FRAMES + 62).expect("plan"),
        "kernels_int8": i8m.matmul_kernels(HOP_FRAMES + 62).expect("plan"),
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&info).expect("json")).expect("write info");
}

fn benches(c: &mut Criterion) {
    write_info();
    let hop_audio = audio(HOP_FRAMES as f32 * frontend::HOP_SIZE as f32 / 22050.0);
    let warm = audio(12.0);

    let mut g = c.benchmark_group("hop");
    g.bench_function("frontend", |b| {
        let mut fe = Frontend::new();
        fe.push(&warm, |_, _| {});
        b.iter(|| {
            let mut n = 0;
            fe.push(&hop_audio, |_, _| n += 1);
            n
        })
    });
    let spec = frontend::spectrogram(&warm);
    let columns: Vec<&[f32]> = spec.chunks_exact(frontend::N_BANDS).collect();
    for p in [Precision::F32, Precision::Int8] {
        let m = model(p);
        let window = m.window_frames();
        g.bench_function(format!("tract_{p}_stream"), |b| {
            let mut s = m.stream(HOP_FRAMES, window).expect("stream runner");
            for c in &columns[..window] {
                s.push_column(c).expect("push");
            }
            let _ = s.mid_level();
            let mut at = 0;
            b.iter(|| {
                for _ in 0..HOP_FRAMES {
                    s.push_column(columns[at % columns.len()]).expect("push");
                    at += 1;
                }
                s.mid_level()
            })
        });
        g.bench_function(format!("tract_{p}_93"), |b| {
            let frames = HOP_FRAMES + m.receptive_field() - 1;
            let mut r = m.window(frames).expect("runner");
            let input = &spec[..frames * frontend::N_BANDS];
            b.iter(|| r.run(input).expect("run"))
        });
        g.bench_function(format!("tract_{p}_window"), |b| {
            let mut r = m.window(window).expect("window runner");
            let input = &spec[..window * frontend::N_BANDS];
            b.iter_batched(|| (), |_| r.run(input).expect("run"), BatchSize::SmallInput)
        });
    }
    g.finish();
}

criterion_group! {
    name = pipeline;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(pipeline);
