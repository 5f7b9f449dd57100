"""A thin trainer: Adam, memory-mapped batches, best-validation checkpoints, resume.

In the spirit of d2l's ``Trainer`` and skorch's overridable steps: :meth:`Trainer.fit`
is a short loop over epochs, and each piece it calls (:meth:`Trainer.train_step`,
:meth:`Trainer.evaluate`, :meth:`Trainer.extra_state`) can be overridden, which
is how :mod:`mkdbook.distillation.teaching` adds the teaching and feedback phases.

Reproducibility: every random draw of a run derives from ``TrainConfig.seed``
and the epoch number (batch order, dropout), so the same seed gives the same
numbers on CPU, and a run resumed from its last checkpoint continues exactly
as the uninterrupted run would have. On CUDA, some kernels are not
bit-reproducible; results then agree only to rounding.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mkdbook.core.atomic import write_atomically
from mkdbook.core.checks import check_int, check_number, check_option
from mkdbook.data.segments import SegmentSet
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import Split
from mkdbook.training.batches import iterate_batches
from mkdbook.training.checkpoints import load_checkpoint, load_resume_state, save_checkpoint, save_resume_state
from mkdbook.training.metrics import SELECTIONS, Scores, class_prior, predict, score, selection_criterion
from mkdbook.training.run_identity import identity_differences, refuse_other_result, run_identity
from mkdbook.training.standardisation import STANDARDISATIONS, ChannelScaler


#: Devices :class:`TrainConfig` accepts.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: Fields of :class:`TrainConfig` that change what is shown, never what is computed;
#: they are not part of a run's identity, so toggling them never blocks a resume.
DISPLAY_FIELDS: tuple[str, ...] = ("progress",)


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained.

    Attributes
    ----------
    epochs : int, default 30
        Maximum number of passes over the training segments (>= 1).
    batch_size : int, default 64
        Segments per optimisation step (>= 1).
    lr : float, default 1e-3
        Adam's learning rate (the paper names Adam, not its settings); finite, >= 0
        (zero freezes the weights, which tests use; the command line asks for > 0).
    weight_decay : float, default 1e-4
        L2 penalty passed to Adam; finite, >= 0.
    patience : int, default 8
        Stop after this many epochs without a better checkpoint by ``select`` (>= 1).
    seed : int, default 0
        Seeds initialisation-independent randomness: batch order and dropout;
        in [0, 2**32 - 1], the range numpy's generators accept.
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``"auto"`` is CUDA when available, the CPU otherwise.
    eval_batch_size : int, default 512
        Segments per forward pass when evaluating (>= 1).
    progress : bool, default True
        Show tqdm progress bars (a display setting: not part of a run's identity).
    max_batches : int or None, default None
        Stop each epoch after this many batches (a random subset of the
        training segments). ``None`` visits every segment; the fast test
        profile uses a small number so that every chapter runs in seconds.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 8
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 512
    progress: bool = True
    max_batches: int | None = None
    standardise: str = "subject"
    select: str = "balanced_accuracy"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "eval_batch_size"):
            check_int(name, getattr(self, name), 1)
        check_number("lr", self.lr, 0.0)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_option("device", self.device, DEVICES)
        check_option("standardise", self.standardise, STANDARDISATIONS)
        check_option("select", self.select, SELECTIONS)
        if self.max_batches is not None:
            check_int("max_batches", self.max_batches, 1)

    def resolved_device(self) -> torch.device:
        """The device to train on.

        Raises
        ------
        ValueError
            If ``device="cuda"`` and PyTorch sees no CUDA device.
        """
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but PyTorch sees no CUDA device; "
                             "use 'auto' or 'cpu'")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def identity(self) -> dict:
        """The fields that decide a run's numbers (all but :data:`DISPLAY_FIELDS`)."""
        return {k: v for k, v in asdict(self).items() if k not in DISPLAY_FIELDS}


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes
    ----------
    history : list of dict
        One row per epoch: ``epoch``, ``train_loss``, ``train_accuracy``,
        ``val_loss``, ``val_accuracy``, ``val_f1``, ``val_balanced_accuracy``,
        ``val_auc``, ``seconds``, plus any terms a subclass logs.
    best_epoch : int
        Epoch (1-based) whose checkpoint was best by ``TrainConfig.select``.
    test : Scores
        Scores of the best checkpoint on the test segments.
    val : Scores
        Scores of the best checkpoint on the validation segments.
    """

    history: list[dict[str, float]]
    best_epoch: int
    test: Scores
    val: Scores


class NonFiniteLossError(ValueError):
    """Training produced a NaN or infinite loss; the run stops instead of reporting it."""


def make_adam(
    parameters: Iterable[nn.Parameter],
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel, the optimiser of every network in the package.

    The fused kernel updates all parameters in one pass instead of several
    per parameter tensor; ``benchmarks/train.py --optimizer`` measures the
    difference against PyTorch's other Adam kernels. It runs on the CPU
    and on CUDA, which are the devices :class:`TrainConfig` chooses from.

    Parameters
    ----------
    parameters : iterable of Parameter
        What the optimiser updates.
    lr : float
        Learning rate.
    weight_decay : float
        L2 penalty added to the gradient (Adam's coupled form, not AdamW's decoupled decay).
    betas : tuple of float
        Decay rates of the first and second moment estimates.
    """
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, betas=betas, fused=True)


class Trainer:
    """Train one network on a split of a :class:`~mkdbook.data.SegmentSet`.

    Parameters
    ----------
    model : nn.Module
        A network of :mod:`mkdbook.models` (takes a modality dict, returns
        :class:`~mkdbook.models.outputs.ModelOutput`).
    config : TrainConfig
    out_dir : path-like, optional
        Where ``last.pt`` (resumable state, with the best weights so far),
        ``last.prev.pt`` (the epoch before) and ``best.pt`` (best-validation
        weights) are written, each with its SHA-256 beside it
        (:mod:`mkdbook.training.checkpoints`). Without it nothing is saved
        and nothing resumes.

    Attributes
    ----------
    modalities : tuple of str
        What evaluation reads (the model's modalities).
    train_modalities : tuple of str
        What training batches hold and the scaler standardises; a subclass
        that also feeds a teacher widens it.
    scaler : ChannelScaler or None
        Fitted on the training segments by :meth:`fit`.
    parts : dict of str to module or optimiser
        Everything besides the model and its optimiser whose state a resume
        restores (a projector, a teacher and its optimiser, a discriminator);
        subclasses add theirs with :meth:`add_part`.
    min_batch : int
        The fewest segments a training step can take (2: batch normalisation
        has no variance to normalise by in one segment). An epoch whose last
        batch would hold fewer leaves those few segments out; the order is
        drawn anew every epoch, so they are others each time.

    Notes
    -----
    If ``out_dir`` holds a ``last.pt`` of the same run (same :func:`run_identity`),
    :meth:`fit` resumes after its last finished epoch; a checkpoint of another
    run is refused with one line naming what differs, and nothing is overwritten.
    Only checkpoints whose checksum matches are read: an unverified ``last.pt``
    is passed over (with a warning) for ``last.prev.pt``, and then for a run
    from the start; an unverified ``best.pt`` is written again from the
    resumed state. No number is ever computed from unverified weights.
    """

    #: See the class's attributes.
    min_batch: int = 2

    def __init__(self, model: nn.Module, config: TrainConfig = TrainConfig(),
                 out_dir: Path | str | None = None) -> None:
        self.config = config
        self.device = config.resolved_device()
        self.model = model.to(self.device)
        self.modalities: tuple[str, ...] = tuple(model.modalities)
        self.train_modalities: tuple[str, ...] = self.modalities
        self.parts: dict[str, nn.Module | torch.optim.Optimizer] = {}
        self.optimizer = self.make_optimizer()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.scaler: ChannelScaler | None = None
        self.identity: dict | None = None
        self.prior: np.ndarray | None = None

    # -- pieces a subclass may override -------------------------------------------------
    def add_part(self, name: str, part: nn.Module | torch.optim.Optimizer) -> None:
        """Register a module or optimiser whose state checkpoints save and resumes restore."""
        self.parts[name] = part

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the model's parameters."""
        return make_adam(self.model.parameters(), lr=self.config.lr,
                         weight_decay=self.config.weight_decay)

    def get_loss(self, output: ModelOutput, y: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The training loss of one batch (as skorch's ``get_loss``): ``{"loss": CE, ...}``.

        Subclasses return further terms to be logged next to ``"loss"``, the
        one that is minimised; :mod:`mkdbook.distillation.teaching` returns :math:`L_S` and its terms.
        """
        return {"loss": nn.functional.cross_entropy(output.logits, y)}

    def train_step(self, batch: dict[str, Tensor], y: Tensor) -> dict[str, float]:
        """One optimisation step on one batch; returns the logged terms.

        The model sees only its own modalities. The returned dict holds
        ``loss``, ``correct`` (the number of correctly classified segments)
        and the further terms of :meth:`get_loss`; the epoch's history row
        averages them.
        """
        self.model.train()
        output: ModelOutput = self.model({k: batch[k] for k in self.modalities})
        terms = self.get_loss(output, y, batch)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        logged = {k: v.item() for k, v in terms.items()}
        logged["correct"] = (output.logits.argmax(1) == y).sum().item()
        return logged

    def identity_extras(self) -> dict:
        """What else decides this trainer's numbers, added to :func:`run_identity` (a loss, a teacher)."""
        return {}

    def extra_state(self) -> dict:
        """State beyond the model, the optimiser and :attr:`parts` that a resume must restore."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned."""

    # -- the loop ------------------------------------------------------------------------
    def _to_device(self, batch: dict[str, Tensor], y: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return self.scaler(batch), y.to(self.device)

    def train_epoch(self, data: SegmentSet, split: Split, target: str, epoch: int) -> dict[str, float]:
        """One pass over the training segments in a seeded random order.

        Raises
        ------
        NonFiniteLossError
            If a batch's loss is NaN or infinite.
        """
        torch.manual_seed(self.config.seed * 100_003 + epoch)
        order = np.random.default_rng([self.config.seed, epoch]).permutation(split.train)
        if self.config.max_batches is not None:
            order = order[: self.config.max_batches * self.config.batch_size]
        remainder = len(order) % self.config.batch_size
        if 0 < remainder < self.min_batch and len(order) > remainder:
            order = order[:-remainder]  # a last batch too small to train on
        sums: dict[str, float] = {}
        n_batches = -(-len(order) // self.config.batch_size)
        batches = iterate_batches(data, order, target, self.train_modalities, self.config.batch_size)
        for batch, y in tqdm(batches, total=n_batches, desc=f"epoch {epoch}", leave=False,
                             disable=not self.config.progress):
            terms = self.train_step(*self._to_device(batch, y))
            if not math.isfinite(terms["loss"]):
                raise NonFiniteLossError(
                    f"epoch {epoch}: the training loss became {terms['loss']}; training stopped "
                    f"(lower the learning rate, currently {self.config.lr:g}, or check the data)")
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value * (1 if key == "correct" else len(y))
        n = len(order)
        row = {f"train_{k}": v / n for k, v in sums.items() if k != "correct"}
        row["train_accuracy"] = sums["correct"] / n
        return row

    def predict(self, data: SegmentSet, index: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and labels of the segments in ``index`` (:func:`predict`)."""
        return predict(self.model, self.scaler, data, index, target,
                       batch_size=self.config.eval_batch_size, device=self.device)

    def evaluate(self, data: SegmentSet, index: np.ndarray, target: str) -> Scores:
        """The :class:`~mkdbook.training.metrics.Scores` on the segments in ``index``, against the training prior."""
        return score(*self.predict(data, index, target), prior=self.prior)

    def _state(self, epoch: int, history: list, best: tuple[tuple[float, ...], int], stale: int,
               best_weights: dict | None) -> dict:
        # The best weights ride along, so that a resume never depends on best.pt
        # (which may be newer than the state resumed from, or damaged).
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "parts": {name: part.state_dict() for name, part in self.parts.items()},
                "scaler": self.scaler.state_dict(), "epoch": epoch, "history": history,
                "best_criterion": list(best[0]), "best_epoch": best[1], "best_model": best_weights,
                "stale": stale, "identity": self.identity, "extra": self.extra_state()}

    def _save_best(self, best_weights: dict, epoch: int) -> None:
        save_checkpoint(self.out_dir / "best.pt", {"model": best_weights, "epoch": epoch, "identity": self.identity})

    def _refuse_other_run(self, path: Path, state: dict) -> None:
        differ = identity_differences(state.get("identity") or {}, self.identity)
        if differ:
            raise ValueError(f"{path}: written by another run ({', '.join(differ)} differ); "
                             f"use a new output folder or delete this one")

    def _resume(self) -> dict | None:
        """The verified resumable state of this run in ``out_dir`` (restored into the model), or ``None``.

        ``last.pt``, or ``last.prev.pt`` when ``last.pt`` is unverified
        (:func:`~mkdbook.training.checkpoints.load_resume_state`); a state
        of another run is refused. ``best.pt`` is rewritten from the state
        when it does not verify or holds another epoch's weights.
        """
        refuse_other_result(self.out_dir / "metrics.json", self.identity)
        state = load_resume_state(self.out_dir / "last.pt", self.device)
        if state is None:
            return None
        self._refuse_other_run(self.out_dir / "last.pt", state)
        if state.get("best_model") is not None:
            best = load_checkpoint(self.out_dir / "best.pt", self.device,
                                   redo="writing it again from the verified resume state")
            if best is None or best.get("epoch") != state["best_epoch"] or best.get("identity") != self.identity:
                self._save_best(state["best_model"], state["best_epoch"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for name, part in self.parts.items():
            part.load_state_dict(state["parts"][name])
        self.load_extra_state(state["extra"])
        return state

    def fit(self, data: SegmentSet, split: Split, target: str) -> TrainResult:
        """Train, keep the best-validation weights, and score them on the test set.

        Parameters
        ----------
        data : SegmentSet
        split : Split
            Train, validation and test indices; the test set is touched once,
            after training, with the best-validation weights.
        target : str
            ``"valence"`` or ``"arousal"`` (any rating scale works).

        Returns
        -------
        TrainResult

        Raises
        ------
        ValueError
            If ``out_dir`` holds a checkpoint of another run.
        NonFiniteLossError
            If the training loss becomes NaN or infinite.
        """
        cfg = self.config
        self.identity = {**run_identity(self.model, data, split, target, cfg.identity()),
                         **self.identity_extras()}
        self.scaler = ChannelScaler.fit(data, split.train, self.train_modalities, seed=cfg.seed,
                                        mode=cfg.standardise)
        self.prior = class_prior(data.labels(target)[split.train])
        history: list[dict[str, float]] = []
        best, stale, start = ((-np.inf,), 0), 0, 1  # (criterion, epoch) of the best checkpoint
        best_weights = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            state = self._resume()
            if state is not None:
                history, stale, start = state["history"], state["stale"], state["epoch"] + 1
                best = (tuple(state["best_criterion"]), state["best_epoch"])
                best_weights = state.get("best_model")
        epochs = tqdm(range(start, cfg.epochs + 1), desc="training", unit="epoch",
                      initial=start - 1, total=cfg.epochs, disable=not cfg.progress)
        for epoch in epochs:
            if stale >= cfg.patience:
                break
            began = time.perf_counter()
            row = {"epoch": epoch, **self.train_epoch(data, split, target, epoch)}
            val = self.evaluate(data, split.val, target)
            row.update(val_loss=val.loss, val_accuracy=val.accuracy, val_f1=val.f1,
                       val_balanced_accuracy=val.balanced_accuracy, val_auc=val.auc,
                       seconds=time.perf_counter() - began)
            history.append(row)
            criterion = selection_criterion(val, cfg.select)
            if criterion > best[0]:
                best, stale = (criterion, epoch), 0
                best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                if self.out_dir is not None:
                    self._save_best(best_weights, epoch)
            else:
                stale += 1
            if self.out_dir is not None:
                save_resume_state(self.out_dir / "last.pt", self._state(epoch, history, best, stale, best_weights))
            epochs.set_postfix(val_acc=f"{val.accuracy:.3f}", best=best[1])
        if best_weights is not None:
            self.model.load_state_dict(best_weights)
        return TrainResult(history, best[1], self.evaluate(data, split.test, target),
                           self.evaluate(data, split.val, target))

    def save_scaler(self) -> None:
        """Write ``scaler.pt`` (the input standardisation) next to ``best.pt``.

        With both, :func:`mkdbook.experiments.grids.trained_network` loads a network back exactly.
        """
        if self.out_dir is None or self.scaler is None:
            return
        save_checkpoint(self.out_dir / "scaler.pt", self.scaler.state_dict())


def write_metrics(result: TrainResult, split: Split, config: dict, path: Path | str,
                  extra: dict | None = None, identity: dict | None = None,
                  trials: dict[str, list[str]] | None = None) -> dict:
    """Write ``metrics.json`` (scores, split, identity, configuration, history and ``extra``).

    ``trials`` (:meth:`mkdbook.splits.Split.trials`) lists the trials of each
    part, the audit trail of which data trained, selected and tested the model.

    Returns the metrics dict that was written.
    """
    path = Path(path)
    metrics = {
        **{f"test_{name}": value for name, value in result.test.summary().items() if name != "n"},
        "n_test_segments": result.test.n,
        **{f"val_{name}": value for name, value in result.val.summary().items() if name != "n"},
        "best_epoch": result.best_epoch,
        "split": {"kind": split.kind, "fold": split.fold, "n_folds": split.n_folds,
                  "seed": split.seed, "shared_trials": split.shared_trials},
        "identity": identity,
        "trials": trials,
        "config": config,
        "history": result.history,
        **(extra or {}),
    }
    text = json.dumps(metrics, indent=1, default=float)
    write_atomically(path, lambda stream: stream.write(text.encode()))
    return metrics
