#!/usr/bin/env python3
"""onnxruntime and PyTorch on the same inputs as earshotd's tract benches.

Inputs: the streaming hop (1 x (31 + 62) x 137 frames, what earshotd runs per
1 s hop) and the whole window (1 x 313 x 137). One thread everywhere
(onnxruntime intra/inter op threads = 1, torch.set_num_threads(1)), median of
repeated runs after warm-up. PyTorch runs the same graph: the ONNX file's
initialisers put into torch ops (convolutions with the file's strides, pads and dilations), checked
against onnxruntime before timing.

Prints JSON (milliseconds) on stdout; bench/run.sh puts it in its table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn, runs: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class TorchFromOnnx:
    """The f32 ONNX graph executed with torch kernels (the op set the exporter writes)."""

    def __init__(self, path: Path):
        import onnx
        import torch
        from onnx import numpy_helper

        self.torch = torch
        self.numpy_helper = numpy_helper
        g = onnx.load(str(path)).graph
        self.inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
        self.nodes = []
        for n in g.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))
        self.outputs = [o.name for o in g.output]

    def __call__(self, x):
        torch = self.torch
        F = torch.nn.functional
        numpy_helper = self.numpy_helper
        env = dict(self.inits)
        env["spectrogram"] = x
        for op, ins, outs, a in self.nodes:
            v = [env[i] for i in ins if i]
            if op == "Sub":
                r = v[0] - v[1]
            elif op == "Div":
                r = v[0] / v[1]
            elif op == "Constant":
                r = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
            elif op == "Transpose":
                r = v[0].permute(*a["perm"])
            elif op == "Unsqueeze":
                r = v[0].unsqueeze(int(v[1].reshape(-1)[0]))
            elif op == "Conv" and v[1].dim() == 4:
                pads = a.get("pads", [0, 0, 0, 0])
                r = F.conv2d(v[0], v[1], v[2] if len(v) > 2 else None, stride=a.get("strides", [1, 1]),
                             padding=(pads[0], pads[1]), dilation=a.get("dilations", [1, 1]))
            elif op == "Conv":
                r = F.conv1d(v[0], v[1], v[2] if len(v) > 2 else None, dilation=a.get("dilations", [1])[0])
            elif op == "MaxPool":
                r = F.max_pool2d(v[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]))
            elif op == "Relu":
                r = torch.relu(v[0])
            elif op == "Shape":
                r = torch.tensor(v[0].shape, dtype=torch.int64)
            elif op == "Slice":  # of a shape: [starts, ends) on axis 0
                r = v[0][int(v[1][0]):int(v[2][0])]
            elif op == "Concat":
                r = torch.cat(v, dim=a["axis"])
            elif op == "Reshape":
                r = v[0].reshape(tuple(int(d) for d in v[1]))
            elif op == "ReduceMean":
                r = v[0].mean(dim=a["axes"], keepdim=bool(a.get("keepdims", 1)))
                if r.dim() == 3 and r.shape[1] == 1:
                    r = r[:, 0] if not a.get("keepdims", 1) else r
            elif op == "Gemm":
                r = F.linear(v[0].reshape(v[0].shape[0], -1), v[1], v[2])
            elif op == "Identity":
                r = v[0]
            else:
                raise SystemExit(f"compare.py: op {op} not supported by the torch runner")
            env[outs[0]] = r
        return [env[o] for o in self.outputs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ROOT / "models" / (ROOT / "models" / "SHIPPED").read_text().strip())
    ap.add_argument("--hop-frames", type=int, default=31)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    meta = json.loads((args.model / "metadata.json").read_text())
    rf = meta["input"]["receptive_field_frames"]
    window = meta["input"]["window_frames"]
    bands = meta["frontend"]["n_bands"]
    rng = np.random.default_rng(0)
    inputs = {
        "stream": (3.0 + rng.standard_normal((1, args.hop_frames + rf - 1, bands))).astype(np.float32),
        "window": (3.0 + rng.standard_normal((1, window, bands))).astype(np.float32),
    }
    out = {"threads": 1, "runs": args.runs, "versions": {}}
    import onnxruntime

    out["versions"] = {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                       "python": sys.version.split()[0]}
    f32 = ort_session(args.model / "model.onnx")
    i8 = ort_session(args.model / "model.int8.onnx")
    tm = TorchFromOnnx(args.model / "model.onnx")
    for name, x in inputs.items():
        runs = args.runs if name == "stream" else max(args.runs // 4, 20)
        ref = f32.run(None, {"spectrogram": x})
        with torch.inference_mode():
            xt = torch.from_numpy(x)
            got = tm(xt)
            for r, g in zip(ref, got):
                d = float(np.abs(r - g.numpy()).max())
                if d > 1e-4:
                    raise SystemExit(f"torch runner differs from onnxruntime by {d} on {name}")
            out[f"torch_f32_{name}_ms"] = median_ms(lambda: tm(xt), runs)
        out[f"ort_f32_{name}_ms"] = median_ms(lambda: f32.run(None, {"spectrogram": x}), runs)
        out[f"ort_int8_{name}_ms"] = median_ms(lambda: i8.run(None, {"spectrogram": x}), runs)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
