"""Scoring a network: its class probabilities on a set of segments, and what they score.

One scoring function (:func:`score`) serves every trainer, every teacher
evaluated beside its student and every results table.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score
from torch import nn

from mkdbook.core.checks import check_option
from mkdbook.core.docstrings import fill_doc
from mkdbook.data.segments import SegmentSet
from mkdbook.training.batches import iterate_batches
from mkdbook.training.standardisation import ChannelScaler

__all__ = ["SELECTIONS", "Scores", "auc_score", "class_prior", "predict", "score", "selection_criterion"]

#: Checkpoint criteria (:attr:`mkdbook.training.trainer.TrainConfig.select`): a validation
#: score to maximise (validation loss breaks ties), or the validation loss alone.
SELECTIONS: tuple[str, ...] = ("balanced_accuracy", "auc", "loss")


@fill_doc
@dataclass(frozen=True)
class Scores:
    """How well class probabilities fit the labels of a set of segments.

    Accuracy alone hides a network that always answers one class; the
    balanced accuracy (0.5 for any constant answer), the ROC AUC (0.5 for
    any constant score) and the majority-class rate beside it expose one.

    Attributes
    ----------
    %(score_loss_accuracy)s
    f1 : float
        Macro-F1 over the classes present.
    %(score_balanced_accuracy)s
    auc : float
        ROC AUC of the class-1 probability (one-vs-rest macro average for
        more classes); NaN when the set holds one class only.
    n : int
        Segments scored.
    majority_class : int
        The training set's most frequent class; -1 when no prior was given.
    majority_rate : float
        Accuracy of always answering ``majority_class`` on this set (NaN without a prior).
    log_loss_gain : float
        Cross-entropy of the constant predictor that answers the training
        prior, minus ``loss``: positive when the network knows more than the
        class balance (NaN without a prior).
    predictions, probabilities : ndarray
    """

    loss: float
    accuracy: float
    f1: float
    balanced_accuracy: float
    auc: float
    n: int
    majority_class: int
    majority_rate: float
    log_loss_gain: float
    predictions: np.ndarray = field(repr=False)
    probabilities: np.ndarray = field(repr=False)

    def summary(self) -> dict[str, float]:
        """The scalar scores, JSON-ready."""
        return {"loss": self.loss, "accuracy": self.accuracy, "f1": self.f1,
                "balanced_accuracy": self.balanced_accuracy, "auc": self.auc, "n": self.n,
                "majority_class": self.majority_class, "majority_rate": self.majority_rate,
                "log_loss_gain": self.log_loss_gain}


def _cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, None))))


def auc_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of class probabilities (NaN when ``labels`` hold one class only)."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    return float(roc_auc_score(labels, probabilities, multi_class="ovr", labels=np.arange(probabilities.shape[1])))


def score(probabilities: np.ndarray, labels: np.ndarray, prior: np.ndarray | None = None) -> Scores:
    """Score class probabilities against labels (:class:`Scores`).

    The one scoring function of the package: a trainer's own network, a
    teacher evaluated by its student's trainer and every results table use it.

    Parameters
    ----------
    probabilities : ndarray, shape (n, n_classes)
    labels : ndarray of int, shape (n,)
    prior : ndarray, shape (n_classes,), optional
        Class frequencies of the training segments: the constant predictor
        against which ``majority_rate`` and ``log_loss_gain`` are measured.

    Returns
    -------
    Scores
    """
    predictions = probabilities.argmax(1)
    loss = _cross_entropy(probabilities, labels)
    majority, majority_rate, gain = -1, float("nan"), float("nan")
    if prior is not None:
        prior = np.asarray(prior, dtype=np.float64)
        majority = int(prior.argmax())
        majority_rate = float(np.mean(labels == majority))
        gain = _cross_entropy(np.broadcast_to(prior, probabilities.shape), labels) - loss
    with warnings.catch_warnings():
        # One subject's test segments may all share one class; recall is then
        # averaged over the classes present, which is what is meant here.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        balanced = float(balanced_accuracy_score(labels, predictions))
    return Scores(loss, float(accuracy_score(labels, predictions)),
                  float(f1_score(labels, predictions, average="macro", zero_division=0)),
                  balanced, auc_score(probabilities, labels),
                  len(labels), majority, majority_rate, gain, predictions, probabilities)


def class_prior(labels: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """Class frequencies of ``labels`` (the training prior of :func:`score`)."""
    return np.bincount(labels, minlength=n_classes) / max(1, len(labels))


@torch.no_grad()
def predict(network: nn.Module, scaler: ChannelScaler, data: SegmentSet, index: np.ndarray,
            target: str, *, batch_size: int = 512,
            device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of ``network`` on the segments in ``index``, and their labels.

    The network runs in eval mode (its mode is restored afterwards) on inputs
    standardised by ``scaler``; only the modalities it reads are loaded.

    Returns
    -------
    probabilities : ndarray, shape (n, n_classes), float32
    labels : ndarray of int64, shape (n,)
    """
    was_training = network.training
    network.eval()
    probs, labels = [], []
    try:
        for batch, y in iterate_batches(data, index, target, tuple(network.modalities), batch_size):
            batch = scaler({k: v.to(device, non_blocking=True) for k, v in batch.items()})
            # The network gets its own modalities only, not the trial ids the scaler read.
            inputs = {name: batch[name] for name in network.modalities}
            probs.append(torch.softmax(network(inputs).logits.float(), 1).cpu().numpy())
            labels.append(y.numpy())
    finally:
        network.train(was_training)
    return np.concatenate(probs), np.concatenate(labels)


def selection_criterion(scores: Scores, select: str) -> tuple[float, ...]:
    """What :meth:`mkdbook.training.trainer.Trainer.fit` maximises to choose a checkpoint, compared as a tuple.

    ``select`` names a validation score (``"balanced_accuracy"`` or ``"auc"``)
    whose ties the lower validation loss breaks, or ``"loss"`` (the lower the
    better). A NaN score (a validation set of one class has no AUC) counts as
    the worst, so the loss alone decides.
    """
    check_option("select", select, SELECTIONS)
    if select == "loss":
        return (-scores.loss,)
    value = getattr(scores, select)
    return (value if math.isfinite(value) else -np.inf, -scores.loss)
