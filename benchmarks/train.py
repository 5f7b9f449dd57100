"""Training-speed benchmark of the teacher and the student on random DEAP-shaped batches.

For each network it prints the training throughput (forward, backward and an
Adam step, after warm-up), the seconds a 19,200-segment epoch would take, the
FLOPs per segment (forward) and per training step (forward + backward, counted
by :class:`torch.utils.flop_counter.FlopCounterMode`), the achieved FLOP/s, the
model-FLOP utilisation against a float32 matrix-product peak measured in the
same run, and the speed-up over a *literal* PyTorch rendering of the same
layer stack (defined below: it filters every sample where the package filters
every ``hop / energy_points`` samples). Run from the repository root::

    python benchmarks/train.py [--segments 19200] [--batch 64] [--threads 2] [--device cpu|cuda]
                               [--amp bf16] [--json OUT.json]

``--amp bf16`` runs every step under :func:`torch.autocast` in bfloat16 (the
matmul peak is then measured in bfloat16 too); ``--json`` also writes the
table as JSON.

Nothing is asserted: the goal (a teacher epoch within 20 s on a 2-core CPU,
at least 30 % of the matmul peak) is read off the table. The load average is
printed too, because other processes on the machine slow every number down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from mkdbook.data.layout import DEAP
from mkdbook.models import (
    StreamConfig,
    StudentConfig,
    TeacherConfig,
    build_model,
    count_parameters,
    make_fusion,
)
from mkdbook.models.encoder import sinusoidal_positions
from mkdbook.models.frontend import LOG_ENERGY_FLOOR
from mkdbook.models.outputs import ModelOutput
from mkdbook.training.trainer import make_adam

N_TIMES = 512
SFREQ = 128.0


# -- the literal rendering ------------------------------------------------------------------
class LiteralStream(nn.Module):
    """The paper's stream written the obvious way, as the speed reference.

    ``Conv2d(1, F, (1, k))`` over every sample of a ``(B, 1, C, T)`` image,
    squared, averaged over each hop and logged (16 log-energy maps per
    segment), ``Conv2d(F, d, (C, 1))``, element-wise dropout after each
    convolution, and the 16 tokens through
    :class:`torch.nn.TransformerEncoderLayer` with its default element-wise
    dropout. Same filter counts, kernel, widths and depth as
    :class:`~mkdbook.models.encoder.ModalityStream`; what differs is only
    what the package optimises: filtering every ``hop / energy_points``
    samples instead of every sample, on frames, the factorised spatial
    filter, and mask-sharing dropout. (The package's filters are a sinc
    bank, computed from 16 edges per step; it drops out after the spatial
    filter only and reads out through batch norms. These change what the
    network learns, not what a step costs, so the literal stream keeps the
    paper's free taps and dropouts.)
    """

    def __init__(self, n_channels: int, config: StreamConfig, taps: tuple[int, ...], width: int):
        super().__init__()
        front = config.front_end
        kernel = round(front.temporal_kernel_s * SFREQ)
        # "Same" padding for an even kernel, spelled out (PyTorch warns on padding="same").
        self.same_padding = ((kernel - 1) // 2, kernel // 2)
        self.temporal = nn.Conv2d(1, front.n_temporal_filters, (1, kernel), bias=False)
        self.spatial = nn.Conv2d(front.n_temporal_filters, config.d_model, (n_channels, 1))
        self.hop = round(front.hop_s * SFREQ)
        self.conv_dropout = nn.Dropout(front.conv_dropout)
        self.norm = nn.LayerNorm(config.d_model)
        self.register_buffer("positions", sinusoidal_positions(N_TIMES // self.hop, config.d_model))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                config.d_model, config.n_heads, config.ff_width, dropout=0.1,
                batch_first=True, norm_first=True,
            )
            for _ in range(config.depth)
        )
        self.taps = taps
        self.readouts = nn.ModuleDict(
            {str(layer): nn.Sequential(nn.LayerNorm(config.d_model), nn.Linear(config.d_model, width))
             for layer in taps}
        )

    def forward(self, signal: Tensor) -> list[Tensor]:
        padded = nn.functional.pad(signal.unsqueeze(1), self.same_padding)
        energy = nn.functional.avg_pool2d(self.temporal(padded).square(), (1, self.hop))
        maps = self.conv_dropout(torch.log(energy + LOG_ENERGY_FLOOR))  # (B, F, C, T / hop)
        maps = self.conv_dropout(self.spatial(maps))  # (B, d, 1, T / hop)
        tokens = nn.functional.elu(self.norm(maps.squeeze(2).transpose(1, 2))) + self.positions
        tapped = []
        for depth, layer in enumerate(self.layers, start=1):
            tokens = layer(tokens)
            if depth in self.taps:
                tapped.append(self.readouts[str(depth)](tokens.mean(dim=1)))
        return tapped


class LiteralNet(nn.Module):
    """Literal streams for ``modalities``, fused per tap depth like the teacher or student."""

    def __init__(self, modalities: tuple[str, ...], stream: StreamConfig, taps: tuple[int, ...],
                 width: int, hidden: int, n_classes: int = 2):
        super().__init__()
        self.modalities = modalities
        per_stream = width // len(modalities)
        self.streams = nn.ModuleDict(
            {name: LiteralStream(DEAP.n_channels(name), stream, taps, per_stream) for name in modalities}
        )
        self.fusion = make_fusion("gated", len(taps), width, hidden)
        self.head_dropout = nn.Dropout(0.25)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        tapped = [self.streams[name](batch[name]) for name in self.modalities]
        fused, _ = self.fusion([torch.cat(per_depth, dim=-1) for per_depth in zip(*tapped)])
        return ModelOutput(logits=self.classifier(self.head_dropout(fused)), features=fused)


def literal_teacher() -> LiteralNet:
    config = TeacherConfig()
    return LiteralNet(("eog", "eeg"), config.eog, config.taps, config.fusion_width, config.fusion_hidden)


def literal_student() -> LiteralNet:
    config = StudentConfig()
    return LiteralNet(("eog",), config.stream, config.taps, config.fusion_width, config.fusion_hidden)


# -- measurement ----------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    parameters: int
    forward_flops: float  # per segment
    step_flops: float  # per segment, forward + backward
    step_seconds: list[float]  # one per timed step

    def throughput(self, batch: int) -> float:
        """Segments per second at the median step time."""
        return batch / statistics.median(self.step_seconds)

    def best_throughput(self, batch: int) -> float:
        """Segments per second at the fastest step: the machine's speed when nothing else runs."""
        return batch / min(self.step_seconds)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batch(batch: int, device: torch.device, seed: int) -> tuple[dict[str, Tensor], Tensor]:
    generator = torch.Generator().manual_seed(seed)
    signals = {
        name: torch.randn(batch, DEAP.n_channels(name), N_TIMES, generator=generator).to(device)
        for name in ("eeg", "eog")
    }
    labels = torch.randint(0, 2, (batch,), generator=generator).to(device)
    return signals, labels


def make_optimizer(model: nn.Module, kind: str) -> torch.optim.Optimizer:
    if kind == "fused":
        return make_adam(model.parameters(), lr=1e-3)  # exactly what the package trains with
    options = {"default": {}, "foreach": {"foreach": True}}[kind]
    return torch.optim.Adam(model.parameters(), lr=1e-3, **options)


def autocast(device: torch.device, amp: str):
    """bfloat16 autocast when ``amp == "bf16"``, nothing otherwise."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                  amp: str = "off", device: torch.device = torch.device("cpu")) -> Callable[[dict, Tensor], None]:
    def step(batch: dict[str, Tensor], labels: Tensor) -> None:
        with autocast(device, amp):
            loss = nn.functional.cross_entropy(model(batch).logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """Matrix-product FLOPs of ``softmax(q k^T) v``: ``2 b h s_q s_k (d_k + d_v)``."""
    batch, heads, n_queries, d_key = query_shape
    n_keys, d_value = key_shape[2], value_shape[3]
    return 2 * batch * heads * n_queries * n_keys * (d_key + d_value)


def attention_backward_flops(grad_shape, query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """Four products of the forward's size (dq, dk, dv, d scores); recomputation not counted."""
    return 2 * attention_flops(query_shape, key_shape, value_shape)


# FlopCounterMode has no formula for PyTorch's CPU attention kernel and would count
# attention as free; these count its matrix products (its CUDA kernels have formulas).
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: attention_backward_flops,
}


def count_flops(action: Callable[[], object]) -> int:
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        action()
    return counter.get_total_flops()


def measure(name: str, model: nn.Module, args: argparse.Namespace, device: torch.device,
            steps: int, warmup: int) -> Result:
    model.to(device).train()
    step = training_step(model, make_optimizer(model, args.optimizer), args.amp, device)
    batch, labels = random_batch(args.batch, device, seed=0)
    with autocast(device, args.amp):
        forward = count_flops(lambda: model(batch))
    train = count_flops(lambda: step(batch, labels))
    for _ in range(warmup):
        step(batch, labels)
    synchronize(device)
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        step(batch, labels)
        synchronize(device)
        times.append(time.perf_counter() - began)
    return Result(name, count_parameters(model), forward / args.batch, train / args.batch, times)


def matmul_peak(device: torch.device, sizes=(1024, 2048, 4096), repeats: int = 3,
                dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of one large ``torch.mm`` in ``dtype`` over a few sizes."""
    best = 0.0
    for size in sizes:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        torch.mm(a, b)
        synchronize(device)
        for _ in range(repeats):
            began = time.perf_counter()
            torch.mm(a, b)
            synchronize(device)
            best = max(best, 2 * size**3 / (time.perf_counter() - began))
    return best


def print_table(results: list[Result], literal: dict[str, Result], peak: float,
                args: argparse.Namespace) -> None:
    header = (f"{'network':<16}{'params':>10}{'MFLOP/seg':>10}{'MFLOP/seg':>11}{'seg/s':>8}"
              f"{'seg/s':>7}{'s/epoch':>9}{'GFLOP/s':>9}{'MFU':>6}{'vs literal':>12}")
    print(header)
    print(f"{'':<16}{'':>10}{'forward':>10}{'train step':>11}{'median':>8}{'best':>7}")
    print("-" * len(header))
    rows = [(result.name, result, literal.get(result.name)) for result in results]
    rows += [("literal " + name, result, result) for name, result in literal.items()]
    for label, result, reference in rows:
        rate = result.throughput(args.batch)
        achieved = result.step_flops * rate
        ratio = f"{rate / reference.throughput(args.batch):.1f}x" if reference else "-"
        print(f"{label:<16}{result.parameters:>10,}{result.forward_flops / 1e6:>10.1f}"
              f"{result.step_flops / 1e6:>11.1f}{rate:>8.1f}{result.best_throughput(args.batch):>7.0f}"
              f"{args.segments / rate:>9.1f}{achieved / 1e9:>9.1f}{achieved / peak:>6.0%}{ratio:>12}")


def table_rows(results: list[Result], peak: float, args: argparse.Namespace) -> list[dict]:
    """The figures of :func:`print_table` (without the literal rendering) as dicts, for ``--json``."""
    rows = []
    for result in results:
        rate = result.throughput(args.batch)
        rows.append({"network": result.name, "parameters": result.parameters,
                     "forward_flops_per_segment": result.forward_flops,
                     "step_flops_per_segment": result.step_flops,
                     "segments_per_second": rate, "best_segments_per_second": result.best_throughput(args.batch),
                     "seconds_per_epoch": args.segments / rate,
                     "achieved_flops": result.step_flops * rate, "mfu": result.step_flops * rate / peak})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=19200, help="segments per epoch (default 19200)")
    parser.add_argument("--batch", type=int, default=64, help="segments per step (default 64)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per network (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--literal-steps", type=int, default=3,
                        help="timed steps of the slow literal rendering (default 3; 0 skips it)")
    parser.add_argument("--optimizer", choices=("default", "foreach", "fused"), default="fused",
                        help="Adam implementation (default fused, as mkdbook.training.trainer.make_adam)")
    parser.add_argument("--networks", nargs="+", default=["teacher", "student"])
    parser.add_argument("--amp", choices=("off", "bf16"), default="off",
                        help="bf16: steps under bfloat16 autocast (default off: float32)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.amp == "bf16" else torch.float32
    load_before = os.getloadavg()[0]
    peak = matmul_peak(device, dtype=dtype)
    results = []
    for name in args.networks:
        model = build_model(name, n_channels=DEAP.channel_counts(), n_times=N_TIMES, sfreq=SFREQ, seed=0)
        results.append(measure(name, model, args, device, args.steps, args.warmup))
    literal = {}
    if args.literal_steps > 0:
        builders = {"teacher": literal_teacher, "student": literal_student}
        for name in args.networks:
            if name in builders:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    model = builders[name]()
                literal[name] = measure(name, model, args, device, args.literal_steps, warmup=1)
    peak = max(peak, matmul_peak(device, dtype=dtype))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"

    print(f"torch {torch.__version__}, device {device} ({name}), {torch.get_num_threads()} threads, "
          f"batch {args.batch}, Adam ({args.optimizer}), autocast {args.amp}, epoch = {args.segments} segments")
    print(f"matmul peak ({dtype} torch.mm, best of 1024/2048/4096): {peak / 1e9:.1f} GFLOP/s")
    print(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}"
          " (after counts this run's own threads)")
    print("seg/s, s/epoch, GFLOP/s and MFU from the median step (best: fastest step);")
    print("MFU = achieved FLOP/s / matmul peak; vs literal = median seg/s over the literal's\n")
    print_table(results, literal, peak, args)
    if args.json:
        record = {"torch": torch.__version__, "device": name, "amp": args.amp, "batch": args.batch,
                  "optimizer": args.optimizer, "segments_per_epoch": args.segments, "matmul_peak_flops": peak,
                  "networks": table_rows(results, peak, args)}
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=1)


if __name__ == "__main__":
    main()
