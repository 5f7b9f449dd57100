"""Data-layer benchmark: first preparation and cached load of a simulated cohort.

Prints each time as a ratio to reading the same bytes with plain numpy
(``np.fromfile`` of the cache's signal file) in the same run; the goal is a
cached load within 2x of that. Run from the repository root::

    python benchmarks/data.py [--subjects 32] [--workdir DIR]

The cohort (about 100 MB per subject) is simulated into ``--workdir`` once and
reused by later runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mkdbook.data import load_segments
from mkdbook.data.simulate import simulate_cohort


def timed(action, repeat: int = 1):
    """Run ``action`` ``repeat`` times; return its last value and the fastest time."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        value = action()
        best = min(best, time.perf_counter() - began)
    return value, best


def touch_all(data) -> float:
    # Reading every byte is what a training epoch does; summing forces it.
    total = 0.0
    for start in range(0, len(data.signals), 2048):
        total += float(np.asarray(data.signals[start:start + 2048]).sum(dtype=np.float64))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=32)
    parser.add_argument("--workdir", default=Path(tempfile.gettempdir()) / "mkdbook-bench")
    args = parser.parse_args()
    work = Path(args.workdir)
    cohort = work / f"cohort-{args.subjects}"
    if not (cohort / "mkdbook-simulated.json").is_file():
        _, seconds = timed(lambda: simulate_cohort(cohort, n_subjects=args.subjects,
                                                                 progress=False))
        print(f"simulated {args.subjects} subjects in {seconds:.1f} s (once; reused later)")
    cache = work / f"cache-{args.subjects}"
    for path in cache.glob("*"):
        path.unlink()
    _, prepare = timed(lambda: load_segments(cohort, cache_dir=cache, progress=False))
    signals = cache / "signals.npy"
    n_bytes = signals.stat().st_size
    np.fromfile(signals, dtype=np.uint8)  # warm the page cache as for every later read
    # Best of three: the machine's other work only ever adds time.
    _, raw = timed(lambda: np.fromfile(signals, dtype=np.float32), 3)
    data, verified = timed(lambda: load_segments(cohort, cache_dir=cache, progress=False), 3)
    _, touch = timed(lambda: touch_all(data), 3)
    data, mapped = timed(lambda: load_segments(cohort, cache_dir=cache, verify=False,
                                                       progress=False), 3)
    _, touch_unverified = timed(lambda: touch_all(data), 3)
    _, raw_sum = timed(lambda: float(np.fromfile(signals, dtype=np.float32).sum(dtype=np.float64)), 3)
    source_bytes = sum(p.stat().st_size for p in cohort.glob("s*.dat"))
    print(f"cohort: {args.subjects} subjects, {source_bytes / 1e9:.2f} GB of sNN.dat; "
          f"cache {n_bytes / 1e9:.2f} GB ({len(data)} segments)")
    print(f"{'step':<46}{'seconds':>9}{'x numpy':>10}")
    rows = [
        ("np.fromfile of the cache bytes (reference)", raw),
        ("first preparation (read, validate, segment, write)", prepare),
        ("cached load with checksum verification", verified),
        ("cached load without verification (memory map)", mapped),
        ("  then reading every segment once", touch_unverified),
        ("np.fromfile + sum (reference for the line below)", raw_sum),
        ("cached load (verified) + reading every segment", verified + touch),
    ]
    for label, seconds in rows:
        print(f"{label:<46}{seconds:>9.3f}{seconds / raw:>10.2f}")
    print(f"goal: cached load within 2x of numpy -> verified load is {verified / raw:.2f}x; "
          f"load + full read is {(verified + touch) / raw_sum:.2f}x of numpy read + sum")


if __name__ == "__main__":
    main()
