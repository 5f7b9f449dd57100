"""Scoring a network: its class probabilities on a set of segments, and what they score.

One scoring function (:func:`score`) serves every trainer, every teacher
evaluated beside its student and every results table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from mkdbook.batches import ChannelScaler, iterate_batches
from mkdbook.data.segments import SegmentSet

__all__ = ["Scores", "predict", "score"]


@dataclass(frozen=True)
class Scores:
    """Loss, accuracy and macro-F1 on a set of segments, with the predictions."""

    loss: float
    accuracy: float
    f1: float
    n: int
    predictions: np.ndarray = field(repr=False)
    probabilities: np.ndarray = field(repr=False)


def score(probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    """Score class probabilities against labels: cross-entropy, accuracy, macro-F1.

    The one scoring function of the package: a trainer's own network, a
    teacher evaluated by its student's trainer and every results table use it.

    Parameters
    ----------
    probabilities : ndarray, shape (n, n_classes)
    labels : ndarray of int, shape (n,)

    Returns
    -------
    Scores
    """
    predictions = probabilities.argmax(1)
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-12, None))))
    return Scores(loss, float(accuracy_score(labels, predictions)),
                  float(f1_score(labels, predictions, average="macro", zero_division=0)),
                  len(labels), predictions, probabilities)


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
            probs.append(torch.softmax(network(batch).logits.float(), 1).cpu().numpy())
            labels.append(y.numpy())
    finally:
        network.train(was_training)
    return np.concatenate(probs), np.concatenate(labels)
