"""A thin trainer: Adam, memory-mapped batches, best-validation checkpoints, resume.

In the spirit of d2l's ``Trainer`` and skorch's overridable steps: :meth:`Trainer.fit`
is a short loop over epochs, and each piece it calls (:meth:`Trainer.train_step`,
:meth:`Trainer.evaluate`, :meth:`Trainer.extra_state`) can be overridden, which
is how :mod:`mkdbook.distill` adds the teaching and feedback phases.

Reproducibility: every random draw of a run derives from ``TrainConfig.seed``
and the epoch number (batch order, dropout), so the same seed gives the same
numbers on CPU, and a run resumed from its last checkpoint continues exactly
as the uninterrupted run would have. On CUDA, some kernels are not
bit-reproducible; results then agree only to rounding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import Tensor, nn
from tqdm.auto import tqdm

from mkdbook.atomic import write_atomically
from mkdbook.data.segments import SegmentSet
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import Split


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained.

    Attributes
    ----------
    epochs : int
        Maximum number of passes over the training segments.
    batch_size : int
        Segments per optimisation step.
    lr : float
        Adam's learning rate (the paper names Adam, not its settings).
    weight_decay : float
        L2 penalty passed to Adam.
    patience : int
        Stop after this many epochs without a lower validation loss.
    seed : int
        Seeds initialisation-independent randomness: batch order and dropout.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    eval_batch_size : int
        Segments per forward pass when evaluating.
    progress : bool
        Show tqdm progress bars.
    max_batches : int or None
        Stop each epoch after this many batches (a random subset of the
        training segments). ``None``, the default, visits every segment; the
        fast test profile uses a small number so that every chapter runs in
        seconds.
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

    def resolved_device(self) -> torch.device:
        """The device to train on."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class ChannelScaler:
    """Per-channel standardisation fitted on training segments only.

    Signals arrive in microvolts with very different ranges (EEG tens, EOG
    hundreds); each channel is centred and scaled by statistics of the
    *training* set, so nothing about validation or test data reaches the model.
    """

    mean: dict[str, Tensor]
    std: dict[str, Tensor]

    @classmethod
    def fit(cls, data: SegmentSet, index: np.ndarray, modalities: tuple[str, ...],
            max_segments: int = 2048, seed: int = 0) -> ChannelScaler:
        """Estimate channel means and standard deviations from (a sample of) ``index``."""
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(index, size=min(len(index), max_segments), replace=False))
        mean, std = {}, {}
        for name in modalities:
            values = np.asarray(data.modality(name, sample), dtype=np.float64)
            mean[name] = torch.tensor(values.mean(axis=(0, 2)), dtype=torch.float32)[:, None]
            std[name] = torch.tensor(values.std(axis=(0, 2)) + 1e-6, dtype=torch.float32)[:, None]
        return cls(mean, std)

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: (v - self.mean[k].to(v.device)) / self.std[k].to(v.device) for k, v in batch.items()}

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        """Tensors only, so checkpoints load with ``weights_only=True``."""
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state_dict(cls, state: dict[str, dict[str, Tensor]]) -> ChannelScaler:
        """Inverse of :meth:`state_dict`."""
        return cls(dict(state["mean"]), dict(state["std"]))


def iterate_batches(data: SegmentSet, index: np.ndarray, target: str,
                    modalities: tuple[str, ...], batch_size: int,
                    rng: np.random.Generator | None = None) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
    """Yield ``(batch, labels)`` from the memory-mapped segments.

    Parameters
    ----------
    data : SegmentSet
    index : ndarray of int
        Segments to visit.
    target : str
        Rating scale that gives the labels.
    modalities : tuple of str
        Keys of the batch dicts (the network's ``modalities``).
    batch_size : int
    rng : numpy Generator, optional
        Shuffles the order when given; sequential otherwise.

    Yields
    ------
    batch : dict of str to Tensor, each (B, n_channels, n_times), float32
    labels : Tensor of int64, shape (B,)
    """
    order = rng.permutation(index) if rng is not None else np.asarray(index)
    labels = data.labels(target)
    for start in range(0, len(order), batch_size):
        # Sorted rows read the memory map in file order, which is faster.
        rows = np.sort(order[start:start + batch_size])
        arrays = data.batch(rows, modalities)
        yield ({k: torch.from_numpy(v) for k, v in arrays.items()},
               torch.from_numpy(labels[rows]))


@dataclass(frozen=True)
class Scores:
    """Loss, accuracy and macro-F1 on a set of segments, with the predictions."""

    loss: float
    accuracy: float
    f1: float
    n: int
    predictions: np.ndarray = field(repr=False)
    probabilities: np.ndarray = field(repr=False)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes
    ----------
    history : list of dict
        One row per epoch: ``epoch``, ``train_loss``, ``train_accuracy``,
        ``train_f1``, ``val_loss``, ``val_accuracy``, ``val_f1``, ``seconds``,
        plus any terms a subclass logs.
    best_epoch : int
        Epoch (1-based) whose checkpoint had the lowest validation loss.
    test : Scores
        Scores of the best checkpoint on the test segments.
    val : Scores
        Scores of the best checkpoint on the validation segments.
    """

    history: list[dict[str, float]]
    best_epoch: int
    test: Scores
    val: Scores


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
        Where ``last.pt`` (resumable state) and ``best.pt`` (best-validation
        weights) are written. Without it nothing is saved and nothing resumes.

    Notes
    -----
    If ``out_dir`` holds a ``last.pt`` of the same configuration, :meth:`fit`
    resumes after its last finished epoch.
    """

    def __init__(self, model: nn.Module, config: TrainConfig = TrainConfig(),
                 out_dir: Path | str | None = None) -> None:
        self.config = config
        self.device = config.resolved_device()
        self.model = model.to(self.device)
        self.modalities: tuple[str, ...] = tuple(model.modalities)
        self.optimizer = self.make_optimizer()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.scaler: ChannelScaler | None = None

    # -- pieces a subclass may override -------------------------------------------------
    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the model's parameters."""
        return make_adam(self.model.parameters(), lr=self.config.lr,
                         weight_decay=self.config.weight_decay)

    def train_step(self, batch: dict[str, Tensor], y: Tensor) -> dict[str, float]:
        """One optimisation step on one batch; returns the logged terms.

        The returned dict must contain ``loss`` and ``correct`` (the number
        of correctly classified segments); further keys are averaged per
        epoch into the history.
        """
        self.model.train()
        output: ModelOutput = self.model(batch)
        loss = nn.functional.cross_entropy(output.logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item(), "correct": (output.logits.argmax(1) == y).sum().item()}

    def extra_state(self) -> dict:
        """State beyond the model and its optimiser that a resume must restore."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned."""

    # -- the loop ------------------------------------------------------------------------
    def _to_device(self, batch: dict[str, Tensor], y: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return self.scaler(batch), y.to(self.device)

    def train_epoch(self, data: SegmentSet, split: Split, target: str, epoch: int) -> dict[str, float]:
        """One pass over the training segments in a seeded random order."""
        torch.manual_seed(self.config.seed * 100_003 + epoch)
        order = np.random.default_rng([self.config.seed, epoch]).permutation(split.train)
        if self.config.max_batches is not None:
            order = order[: self.config.max_batches * self.config.batch_size]
        sums: dict[str, float] = {}
        n_batches = -(-len(order) // self.config.batch_size)
        batches = iterate_batches(data, order, target, self.modalities, self.config.batch_size)
        for batch, y in tqdm(batches, total=n_batches, desc=f"epoch {epoch}", leave=False,
                             disable=not self.config.progress):
            terms = self.train_step(*self._to_device(batch, y))
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value * (1 if key == "correct" else len(y))
        n = len(order)
        row = {f"train_{k}": v / n for k, v in sums.items() if k != "correct"}
        row["train_accuracy"] = sums["correct"] / n
        return row

    @torch.no_grad()
    def predict(self, data: SegmentSet, index: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and labels of the segments in ``index`` (eval mode)."""
        self.model.eval()
        probs, labels = [], []
        for batch, y in iterate_batches(data, index, target, self.modalities,
                                        self.config.eval_batch_size):
            batch, _ = self._to_device(batch, y)
            probs.append(torch.softmax(self.model(batch).logits.float(), 1).cpu().numpy())
            labels.append(y.numpy())
        return np.concatenate(probs), np.concatenate(labels)

    def evaluate(self, data: SegmentSet, index: np.ndarray, target: str) -> Scores:
        """Cross-entropy, accuracy and macro-F1 on the segments in ``index``."""
        probs, labels = self.predict(data, index, target)
        predictions = probs.argmax(1)
        loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))
        return Scores(loss, accuracy_score(labels, predictions),
                      f1_score(labels, predictions, average="macro", zero_division=0),
                      len(labels), predictions, probs)

    def _state(self, epoch: int, history: list, best: tuple[float, int], stale: int) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": epoch, "history": history,
                "best_loss": best[0], "best_epoch": best[1], "stale": stale,
                "config": asdict(self.config), "extra": self.extra_state()}

    def _save(self, state: dict, name: str) -> None:
        write_atomically(self.out_dir / name, lambda stream: torch.save(state, stream))

    def _resume(self) -> dict | None:
        path = self.out_dir / "last.pt" if self.out_dir else None
        if path is None or not path.is_file():
            return None
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["config"] != asdict(self.config):
            raise ValueError(f"{path} was written with another configuration; "
                             f"use a new out_dir or delete it")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
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
        """
        cfg = self.config
        self.scaler = ChannelScaler.fit(data, split.train, self.modalities, seed=cfg.seed)
        history: list[dict[str, float]] = []
        best, stale, start = (np.inf, 0), 0, 1
        best_weights = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            state = self._resume()
            if state is not None:
                history, best, stale = state["history"], (state["best_loss"], state["best_epoch"]), state["stale"]
                start = state["epoch"] + 1
        epochs = tqdm(range(start, cfg.epochs + 1), desc="training", unit="epoch",
                      initial=start - 1, total=cfg.epochs, disable=not cfg.progress)
        for epoch in epochs:
            if stale >= cfg.patience:
                break
            began = time.perf_counter()
            row = {"epoch": epoch, **self.train_epoch(data, split, target, epoch)}
            val = self.evaluate(data, split.val, target)
            row.update(val_loss=val.loss, val_accuracy=val.accuracy, val_f1=val.f1,
                       seconds=time.perf_counter() - began)
            history.append(row)
            if val.loss < best[0]:
                best, stale = (val.loss, epoch), 0
                best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                if self.out_dir is not None:
                    self._save({"model": best_weights, "epoch": epoch}, "best.pt")
            else:
                stale += 1
            if self.out_dir is not None:
                self._save(self._state(epoch, history, best, stale), "last.pt")
            epochs.set_postfix(val_acc=f"{val.accuracy:.3f}", best=best[1])
        self._load_best(best_weights)
        return TrainResult(history, best[1], self.evaluate(data, split.test, target),
                           self.evaluate(data, split.val, target))

    def _load_best(self, best_weights: dict | None) -> None:
        if best_weights is None and self.out_dir is not None and (self.out_dir / "best.pt").is_file():
            best_weights = torch.load(self.out_dir / "best.pt", map_location=self.device,
                                      weights_only=True)["model"]
        if best_weights is not None:
            self.model.load_state_dict(best_weights)


def write_metrics(result: TrainResult, split: Split, config: dict, path: Path | str,
                  extra: dict | None = None) -> dict:
    """Write ``metrics.json`` (test scores, split, configuration, history and ``extra``).

    Returns the metrics dict that was written.
    """
    path = Path(path)
    metrics = {
        "test_accuracy": result.test.accuracy,
        "test_f1": result.test.f1,
        "test_loss": result.test.loss,
        "n_test_segments": result.test.n,
        "val_accuracy": result.val.accuracy,
        "best_epoch": result.best_epoch,
        "split": {"kind": split.kind, "fold": split.fold, "n_folds": split.n_folds,
                  "seed": split.seed, "shared_trials": split.shared_trials},
        "config": config,
        "history": result.history,
        **(extra or {}),
    }
    text = json.dumps(metrics, indent=1, default=float)
    write_atomically(path, lambda stream: stream.write(text.encode()))
    return metrics
