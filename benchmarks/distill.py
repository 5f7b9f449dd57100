"""Cost of distillation: a plain student step, a teaching step and a feedback phase.

Times, on the default networks and random DEAP-shaped batches (32 EEG + 2 EOG
channels, 4 s at 128 Hz), in one run and interleaved so that other load on the
machine hits all three alike:

plain
    One Adam step of the student on its cross-entropy (:meth:`mkdbook.training.trainer.Trainer.train_step`).
teaching
    :func:`mkdbook.distillation.teaching.teaching_step` with the paper's loss (CE + KL +
    projected feature MSE): a teacher forward pass without gradient on top
    of the plain step. The feedback variant, whose teacher changes, takes this step.
stored
    The same step for a fixed teacher, whose outputs on the training segments
    are computed once (:mod:`mkdbook.distillation.teacher_outputs`): the batch's outputs are
    looked up in a table of ``--segments`` rows instead of running the teacher.
teaching + feedback
    A teaching step followed by :func:`mkdbook.distillation.feedback.feedback_phase` (the
    second-order pilot step and the teacher's update), as
    :class:`mkdbook.distillation.feedback.FeedbackDistiller` takes them: the teaching step
    keeps the pilot's part of its teacher pass with its graph
    (:func:`mkdbook.distillation.feedback.teacher_forward`) and the phase reuses it. The
    cost of a feedback phase is this minus a teaching step. Timed with the
    default pilot (every second segment) and with the whole batch
    (``pilot_stride=1``).
feedback as before
    The phase alone with a whole-batch pilot and a quiz batch of the training
    batch size, running the teacher on the training batch itself, as before
    the pass was shared and the pilot and quiz batches thinned. ``--own-ce``
    adds the control without the student's term
    (:attr:`FeedbackConfig.student_term` false).

It prints the median seconds of each and the ratios, next to the goals
(a stored-teacher step at most 1.15x plain, feedback at most 3x teaching).
Nothing is asserted. Run from the repository root::

    python benchmarks/distill.py [--batch 64] [--repeats 7] [--threads 2] [--device cpu|cuda]
                                 [--segments 4096] [--amp bf16] [--clock wall|cpu] [--json OUT.json]
                                 [--pilot-stride 2] [--quiz-batch 32] [--own-ce]

``--amp bf16`` runs all three under bfloat16 :func:`torch.autocast`;
``--clock cpu`` times the CPU time of this process instead of wall time
(on a machine shared with other work, which inflates wall time far more;
on CUDA it misses the GPU's work); ``--json`` also writes the medians and
ratios as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from mkdbook.data.layout import DEAP
from mkdbook.distillation.feedback import FeedbackConfig, feedback_phase, make_teacher_optimizer, teacher_forward
from mkdbook.distillation.losses import DistillationLossConfig, FeatureProjector
from mkdbook.distillation.teacher_outputs import TeacherOutputs
from mkdbook.distillation.teaching import teaching_step
from mkdbook.models import build_model, count_parameters

N_TIMES = 512


def _batch(n: int, device: torch.device, gen: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    batch = {"eeg": torch.randn(n, 32, N_TIMES, generator=gen), "eog": torch.randn(n, 2, N_TIMES, generator=gen)}
    return {k: v.to(device) for k, v in batch.items()}, torch.randint(0, 2, (n,), generator=gen).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="segments per batch (default 64)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions of each (default 7)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--segments", type=int, default=4096,
                        help="rows of the stored teacher outputs the batch is looked up in (default 4096)")
    parser.add_argument("--pilot-stride", type=int, default=FeedbackConfig().pilot_stride,
                        help="the pilot learns from every n-th segment (default: FeedbackConfig's)")
    parser.add_argument("--quiz-batch", type=int, default=FeedbackConfig().quiz_batch,
                        help="segments per quiz batch (default: FeedbackConfig's)")
    parser.add_argument("--own-ce", action="store_true",
                        help="also time the feedback phase without the student's term (the teacher's own CE)")
    parser.add_argument("--amp", choices=("off", "bf16"), default="off",
                        help="bf16: run under bfloat16 autocast (default off: float32)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: CPU time of this process, robust to other load (default wall)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    student = build_model("student", n_channels=DEAP.channel_counts(), seed=0).to(device).train()
    teacher = build_model("teacher", n_channels=DEAP.channel_counts(), seed=1).to(device).eval()
    projector = FeatureProjector(student.config.fusion_width, teacher.config.fusion_width).to(device)
    params = list(student.parameters()) + list(projector.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4)
    plain_optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
    loss = DistillationLossConfig.fusion()
    for name in ("pilot_stride", "quiz_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be an integer >= 1, got {getattr(args, name)}")
    feedback = FeedbackConfig(pilot_stride=args.pilot_stride, quiz_batch=args.quiz_batch)
    teacher_optimizer = make_teacher_optimizer(teacher, feedback)
    train, y = _batch(args.batch, device, gen)
    val, y_val = _batch(args.batch, device, gen)
    quiz, y_quiz = ({k: v[:args.quiz_batch] for k, v in val.items()}, y_val[:args.quiz_batch])
    stored, rows = _stored_outputs(teacher, train, args.segments, device, gen)

    def plain() -> None:
        out = student(train)
        ce = torch.nn.functional.cross_entropy(out.logits, y)
        plain_optimizer.zero_grad(set_to_none=True)
        ce.backward()
        plain_optimizer.step()

    def teaching() -> None:
        teaching_step(student, teacher, projector, train, y, optimizer, loss)

    def teaching_stored() -> None:
        teaching_step(student, teacher, projector, train, y, optimizer, loss, teacher_out=stored.lookup(rows))

    def teaching_feedback(config: FeedbackConfig) -> Callable[[], None]:
        def run() -> None:
            whole, pilot = teacher_forward(teacher, train, config)
            teaching_step(student, teacher, projector, train, y, optimizer, loss, teacher_out=whole)
            feedback_phase(teacher, student, projector, train, y, quiz, y_quiz, teacher_optimizer, loss, config,
                           pilot)
        return run

    def phase(config: FeedbackConfig, x_quiz: dict[str, torch.Tensor], labels: torch.Tensor) -> Callable[[], None]:
        return lambda: feedback_phase(teacher, student, projector, train, y, x_quiz, labels, teacher_optimizer,
                                      loss, config)

    whole_pilot = FeedbackConfig(pilot_stride=1, quiz_batch=args.quiz_batch)
    jobs = {"plain": plain, "teaching": teaching, "stored": teaching_stored,
            "teaching + feedback": teaching_feedback(feedback),
            "teaching + feedback, whole pilot": teaching_feedback(whole_pilot),
            "feedback as before": phase(FeedbackConfig(pilot_stride=1, quiz_batch=args.batch), val, y_val)}
    if args.own_ce:
        jobs["feedback (own CE only)"] = phase(FeedbackConfig(student_term=False, quiz_batch=args.quiz_batch),
                                               quiz, y_quiz)
    if args.amp == "bf16":
        jobs = {name: _autocast(job, device) for name, job in jobs.items()}
    for job in jobs.values():  # warm-up: allocator, kernels, autograd caches
        job()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            _sync(device)
            began = clock()
            job()
            _sync(device)
            times[name].append(clock() - began)
    median = {name: statistics.median(values) for name, values in times.items()}
    median["feedback"] = median["teaching + feedback"] - median["teaching"]
    median["feedback, whole pilot"] = median["teaching + feedback, whole pilot"] - median["teaching"]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, quiz batch {args.quiz_batch}, "
          f"pilot stride {args.pilot_stride}, {args.clock} clock, load average {load:.1f}")
    print(f"student {count_parameters(student):,} parameters, teacher {count_parameters(teacher):,}")
    for name, value in times.items():
        spread = max(value) - min(value)
        print(f"{name:>32}: {median[name] * 1e3:8.1f} ms  (range {spread * 1e3:.1f} ms over {args.repeats})")
    for name in ("feedback", "feedback, whole pilot"):
        print(f"{name:>32}: {median[name] * 1e3:8.1f} ms  (teaching + {name} minus teaching)")
    print(f"stored / plain      = {median['stored'] / median['plain']:.2f}  (goal <= 1.15; fixed teachers)")
    print(f"teaching / plain    = {median['teaching'] / median['plain']:.2f}  (teacher run on every batch)")
    print(f"feedback / teaching = {median['feedback'] / median['teaching']:.2f}  (goal <= 3)")
    whole = median["feedback, whole pilot"] / median["teaching"]
    before = median["feedback as before"] / median["teaching"]
    print(f"feedback with a whole-batch pilot / teaching = {whole:.2f}; as before (teacher run again) = {before:.2f}")
    if args.own_ce:
        print(f"own-CE feedback / teaching = {median['feedback (own CE only)'] / median['teaching']:.2f}")
    every = FeedbackConfig().every
    overall = (every * median["teaching"] + median["feedback"]) / (every * median["plain"])
    print(f"distillation with feedback every {every} steps / plain training = {overall:.2f}")
    if args.json:
        record = {"torch": torch.__version__, "device": str(device), "amp": args.amp, "batch": args.batch,
                  "clock": args.clock, "threads": torch.get_num_threads(), "load_average": load,
                  "pilot_stride": args.pilot_stride, "quiz_batch": args.quiz_batch,
                  "median_seconds": median, "teaching_over_plain": median["teaching"] / median["plain"],
                  "stored_over_plain": median["stored"] / median["plain"],
                  "feedback_over_teaching": median["feedback"] / median["teaching"],
                  "feedback_whole_pilot_over_teaching": whole, "feedback_as_before_over_teaching": before,
                  "distillation_over_plain": overall}
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=1)


def _stored_outputs(teacher: torch.nn.Module, batch: dict[str, torch.Tensor], n: int, device: torch.device,
                    gen: torch.Generator) -> tuple[TeacherOutputs, np.ndarray]:
    """A table of ``n`` segments' teacher outputs holding the batch's true outputs at random rows."""
    with torch.no_grad():
        out = teacher(batch)
    rows = np.sort(torch.randperm(n, generator=gen)[:len(out.logits)].numpy())
    logits = torch.randn(n, out.logits.shape[1], generator=gen).to(device)
    features = torch.randn(n, out.features.shape[1], generator=gen).to(device)
    logits[rows], features[rows] = out.logits, out.features
    return TeacherOutputs(np.arange(n), logits, "features", features, "benchmark"), rows


def _autocast(job: Callable[[], None], device: torch.device) -> Callable[[], None]:
    def run() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            job()
    return run


if __name__ == "__main__":
    main()
