"""Training one network: batches, standardisation, the trainer, its scores and its run's identity.

Taught in chapter 3 (the teacher), used by every chapter that trains.

:mod:`~mkdbook.training.batches`
    Segments read from the memory map in batches keyed by modality.
:mod:`~mkdbook.training.standardisation`
    Each channel centred and scaled by statistics of training data only.
:mod:`~mkdbook.training.trainer`
    A thin trainer: Adam, best-validation checkpoints, resume.
:mod:`~mkdbook.training.metrics`
    Class probabilities on a set of segments, and what they score.
:mod:`~mkdbook.training.run_identity`
    Everything that decides a run's numbers, checked before a checkpoint is reused.
:mod:`~mkdbook.training.runs`
    A cell (one method, target, fold and seed), its cache key, and what a method returns.
"""

from mkdbook.training.batches import iterate_batches
from mkdbook.training.metrics import Scores, predict, score
from mkdbook.training.runs import Cell, MethodResult, cell_key
from mkdbook.training.standardisation import ChannelScaler
from mkdbook.training.trainer import TrainConfig, Trainer, TrainResult

__all__ = ["Cell", "ChannelScaler", "MethodResult", "Scores", "TrainConfig", "TrainResult", "Trainer", "cell_key",
           "iterate_batches", "predict", "score"]
