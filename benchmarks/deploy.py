"""The student on a device: latency per window, peak memory and size of each way of running it.

For one EOG window (2 channels, 4 s at 128 Hz) at a time, on ``--threads``
threads (one by default: one core of a wearable's processor), it times

PyTorch eager
    :class:`mkdbook.deploy.export.StandardisedStudent` under :func:`torch.inference_mode`;
TorchScript
    the same module traced and loaded back (:func:`mkdbook.deploy.export.export_torchscript`);
ONNX Runtime float32
    the ONNX export (:func:`mkdbook.deploy.export.export_onnx`);
ONNX Runtime int8
    its dynamic int8 quantisation (:func:`mkdbook.deploy.quantise.quantise_int8`);

and, for scale, the EEG+EOG teacher in PyTorch eager on one window of both
modalities. It prints the median and 99th-percentile milliseconds of each
(:func:`mkdbook.deploy.latency.time_per_window`), the size of each file,
the peak resident memory of a fresh process that loads the model and
decides ``--repeats`` windows (the ONNX Runtime processes import neither
torch nor the package, as on a device), the parameters and multiply-adds of
student and teacher (:func:`mkdbook.deploy.latency.multiply_adds`), and the
ratios to the goals: the int8 student under 2 ms per window, at least 10x
faster than the teacher. Nothing is asserted. Run from the repository root::

    python benchmarks/deploy.py [--run-dir RUN_DIR] [--threads 1] [--repeats 1000] [--json OUT.json]

Without ``--run-dir`` the networks are freshly initialised (seed 0): the
time of a forward pass does not depend on the values of the weights. With
it, the student of that ``mkdbook train --model student`` or ``mkdbook
distill`` folder is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

#: The child processes that measure peak memory: what each imports and runs.
_CHILD = {
    "onnx": ("import numpy as np, onnxruntime as ort\n"
             "o = ort.SessionOptions(); o.intra_op_num_threads = {threads}; o.inter_op_num_threads = 1\n"
             "s = ort.InferenceSession({file!r}, o, providers=['CPUExecutionProvider'])\n"
             "x = np.random.default_rng(0).normal(0, 100, (1, 2, 512)).astype(np.float32)\n"
             "for _ in range({repeats}): s.run(None, {{s.get_inputs()[0].name: x}})\n"),
    "torchscript": ("import torch, warnings\nwarnings.simplefilter('ignore')\n"
                    "torch.set_num_threads({threads})\nm = torch.jit.load({file!r})\n"
                    "x = torch.randn(1, 2, 512) * 100\n"
                    "with torch.inference_mode():\n    for _ in range({repeats}): m(x)\n"),
    "eager": ("import torch\nfrom mkdbook.deploy.export import StandardisedStudent, load_student, window_statistics\n"
              "from mkdbook.models import build_model\ntorch.set_num_threads({threads})\n"
              "run = {run_dir!r}\n"
              "if run:\n    s, scaler = load_student(run); m = StandardisedStudent(s, *window_statistics(scaler))\n"
              "else:\n    m = StandardisedStudent(build_model('student', n_channels={{'eog': 2}}, seed=0), "
              "torch.zeros(2, 1), torch.ones(2, 1))\n"
              "x = torch.randn(1, 2, 512) * 100\n"
              "with torch.inference_mode():\n    for _ in range({repeats}): m(x)\n"),
}
# The high-water mark of the process's own memory map (KiB): ru_maxrss would carry
# over the parent's peak on Linux, where it survives the exec of the child.
_REPORT_PEAK = ("import re\nwith open('/proc/self/status') as f:\n"
                "    print(re.search(r'VmHWM:\\s+(\\d+)', f.read()).group(1))\n")


def peak_memory_mb(kind: str, file: Path | None, threads: int, repeats: int, run_dir: str | None) -> float:
    """Peak resident memory (MB) of a fresh Python process that loads one backend and decides ``repeats`` windows."""
    code = _CHILD[kind].format(file=str(file), threads=threads, repeats=repeats, run_dir=run_dir) + _REPORT_PEAK
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return int(out.stdout.split()[-1]) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=None, help="a finished student's folder (default: fresh weights)")
    parser.add_argument("--threads", type=int, default=1, help="threads per backend (default 1)")
    parser.add_argument("--repeats", type=int, default=1000, help="timed windows per backend (default 1000)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime
    import torch

    from mkdbook.deploy.export import StandardisedStudent, load_student, window_statistics
    from mkdbook.deploy.latency import backends, multiply_adds, time_per_window
    from mkdbook.models import build_model

    torch.set_num_threads(args.threads)
    if args.run_dir:
        student, scaler = load_student(args.run_dir)
        model = StandardisedStudent(student, *window_statistics(scaler))
    else:
        model = StandardisedStudent(build_model("student", n_channels={"eog": 2}, seed=0), torch.zeros(2, 1),
                                    torch.ones(2, 1))
    teacher = build_model("teacher", n_channels={"eeg": 32, "eog": 2}, seed=0).eval()
    window = np.random.default_rng(0).normal(0, 100, (1, 2, 512)).astype(np.float32)
    pair = {"eeg": torch.randn(1, 32, 512), "eog": torch.from_numpy(window)}
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, backend in backends(model, folder, args.threads).items():
            latency = time_per_window(lambda: backend.decide(window), args.repeats)
            kind = "eager" if backend.file is None else "torchscript" if name == "TorchScript" else "onnx"
            size = backend.file.stat().st_size if backend.file else sum(
                t.numel() * t.element_size() for t in model.state_dict().values())
            rows[name] = {"median_ms": latency.median_ms, "p99_ms": latency.p99_ms, "size_mb": size / 2**20,
                          "peak_memory_mb": peak_memory_mb(kind, backend.file, args.threads, 200, args.run_dir)}
    with torch.inference_mode():
        latency = time_per_window(lambda: teacher(pair), args.repeats)
    rows["teacher, PyTorch eager"] = {"median_ms": latency.median_ms, "p99_ms": latency.p99_ms,
                                      "size_mb": sum(p.numel() * 4 for p in teacher.parameters()) / 2**20,
                                      "peak_memory_mb": None}
    networks = {"student": {"parameters": sum(p.numel() for p in model.parameters()),
                            "multiply_adds": multiply_adds(model, torch.from_numpy(window))},
                "teacher": {"parameters": sum(p.numel() for p in teacher.parameters()),
                            "multiply_adds": multiply_adds(teacher, pair)}}
    int8 = rows["ONNX Runtime int8"]["median_ms"]
    teacher_ms = rows["teacher, PyTorch eager"]["median_ms"]
    ratios = {"teacher / int8 student (median)": teacher_ms / int8,
              "teacher / student, both PyTorch eager (median)": teacher_ms / rows["PyTorch eager"]["median_ms"],
              "float32 / int8 (ONNX Runtime, median)": rows["ONNX Runtime float32"]["median_ms"] / int8,
              "int8 / float32 file size": rows["ONNX Runtime int8"]["size_mb"] / rows["ONNX Runtime float32"]["size_mb"]}
    load = os.getloadavg()[0]
    machine = {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "python": platform.python_version(), "torch": torch.__version__,
               "onnxruntime": onnxruntime.__version__, "threads": args.threads}

    print(f"{machine['processor']}, {machine['cpu_count']} CPUs, {args.threads} thread(s); "
          f"load average {load:.2f}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    print(f"{'':24} {'median ms':>10} {'p99 ms':>8} {'size MB':>8} {'peak MB':>8}")
    for name, row in rows.items():
        peak = "-" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb']:.0f}"
        print(f"{name:24} {row['median_ms']:10.3f} {row['p99_ms']:8.3f} {row['size_mb']:8.2f} {peak:>8}")
    for name, figures in networks.items():
        print(f"{name}: {figures['parameters']:,} parameters, {figures['multiply_adds'] / 1e6:.2f} M multiply-adds "
              f"per window")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    print(f"goals: int8 student under 2 ms ({int8:.3f} ms), at least 10x faster than the teacher "
          f"({ratios['teacher / int8 student (median)']:.1f}x)")
    if args.json:
        record = {"machine": machine, "load_average_1min": load, "repeats": args.repeats, "latency": rows,
                  "networks": networks, "ratios": ratios}
        Path(args.json).write_text(json.dumps(record, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
