"""Pocket networks: small teacher and student networks on band power, for sweeps of hundreds of runs.

Chapter 7 asks *when* distillation can help, which takes many runs at many
settings of the data. The deep networks of chapters 3-6 need minutes per run;
the small versions here need a fraction of a second. They keep what matters
to the question: the teacher reads EEG and EOG, the student reads EOG alone,
both are trained on the same labelled trials, and the student learns from the
teacher through the package's own loss (:func:`mkdbook.distillation.losses.student_loss`,
cross-entropy plus the KL term of Hinton et al., 2015). What they drop is
the raw signal: both read the log band power of every channel
(:func:`mkdbook.analysis.band_power.band_power`) in :data:`SWEEP_BANDS`.

A simulated cohort is known down to its latent state, so beside the teacher
learned from data a run has two reference teachers with known answers:

* the *oracle*, which answers with the probability of a high rating given the
  latent state that drives each segment's signals
  (:func:`~mkdbook.data.simulate.label_probability` of
  :func:`~mkdbook.data.simulate.segment_latent`): the best teacher there could
  be, and the ceiling any model of one segment's signals can reach;
* the *shuffled* teacher, the learned teacher's answers permuted across the
  training segments: the same soft labels, none of the information.

:func:`band_power_cohort` simulates subjects in memory and caches their features
(never the signals) under ``$MKDBOOK_HOME/pocket``; :func:`run_folds` trains
every arm on every fold; :mod:`mkdbook.sweeps.dose_response` repeats it over settings.

Works cited:

* G. Hinton, O. Vinyals and J. Dean, "Distilling the Knowledge in a Neural Network,"
  arXiv:1503.02531, 2015.
* D. Lopez-Paz, L. Bottou, B. Schoelkopf and V. Vapnik, "Unifying distillation and
  privileged information," ICLR 2016.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from torch import Tensor, nn

from mkdbook import __version__
from mkdbook.analysis.band_power import BANDS, band_power
from mkdbook.core.atomic import write_atomically
from mkdbook.core.checks import check_int, check_number, check_option
from mkdbook.core.keys import json_key, source_digest
from mkdbook.core.paths import home
from mkdbook.core.seeding import seeded
from mkdbook.data.layout import DEAP
from mkdbook.data.segments import SegmentConfig, segment_trials
from mkdbook.data.simulate import (
    Latent,
    SimulationConfig,
    label_probability,
    segment_latent,
    simulate_latents,
    simulate_subject,
)
from mkdbook.distillation.losses import DistillationLossConfig, cross_entropy, student_loss
from mkdbook.models.outputs import ModelOutput

__all__ = ["ARMS", "SWEEP_BANDS", "RATING_FIELDS", "UNLABELLED", "BandPowerNetConfig", "BandPowerData", "BandPowerNet", "band_power_cohort",
           "run_folds", "train_band_power_nets", "training_rows", "trial_folds", "with_ratings"]

#: Bands of the pocket features: the four of chapter 2, plus the slow band of
#: blinks and saccades and the band above 45 Hz up to DEAP's Nyquist
#: frequency, where muscle activity lives. Fixed before any result was seen.
SWEEP_BANDS: dict[str, tuple[float, float]] = {"delta": (1.0, 4.0), **BANDS, "high": (45.0, 64.0)}

#: Simulator fields that change the ratings and nothing else: cohorts that
#: differ only in these share their signals (:func:`with_ratings`).
RATING_FIELDS: tuple[str, ...] = ("rating_scale", "rating_bias_sd", "rating_noise_sd", "rating_noise_subject_sd")

#: What :func:`run_folds` returns a probability for, per test segment.
#: ``teacher``: EEG+EOG on labels; ``student``: EOG on labels alone;
#: ``distilled``, ``shuffled``, ``oracle``: EOG students taught by the teacher,
#: the shuffled teacher and the oracle; ``ceiling``: the oracle itself.
ARMS: tuple[str, ...] = ("teacher", "student", "distilled", "shuffled", "oracle", "ceiling")

#: The label of a segment a network may not learn the label of (a segment of the
#: transfer set): :func:`torch.nn.functional.cross_entropy`'s default
#: ``ignore_index``, so the cross-entropy is the mean over the labelled segments.
UNLABELLED: int = -100


@dataclass(frozen=True)
class BandPowerData:
    """Per-segment features, labels and known truth of a cohort.

    Attributes
    ----------
    eeg, eog : ndarray, shape (n_segments, n_channels * n_bands)
        Log10 band power of each modality (:data:`SWEEP_BANDS`).
    subject, trial : ndarray of int, shape (n_segments,)
    labels : ndarray of int, shape (n_segments,)
        1 when the trial's rating of ``target`` exceeds the threshold.
    oracle : ndarray, shape (n_segments,)
        Probability of label 1 given the latent state of the segment.
    target : str
    description : str
        For figure captions.
    """

    eeg: np.ndarray = field(repr=False)
    eog: np.ndarray = field(repr=False)
    subject: np.ndarray = field(repr=False)
    trial: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    oracle: np.ndarray = field(repr=False)
    target: str
    description: str

    @property
    def subjects(self) -> np.ndarray:
        """Subject numbers present, sorted."""
        return np.unique(self.subject)


@lru_cache(maxsize=1)
def _feature_code() -> str:
    """SHA-256 of the code the features depend on: the simulator, the segments, band power.

    Found through the modules' own files (not a hand-written list of paths),
    so that moving one of them cannot silently drop it from the key.
    """
    from mkdbook.analysis import band_power
    from mkdbook.data import layout, segments, simulate

    simulator = Path(simulate.__file__).parent
    files = [*simulator.glob("*.py"), Path(segments.__file__), Path(layout.__file__), Path(band_power.__file__)]
    return source_digest(files, Path(simulate.__file__).parents[3])


def _cache_key(variant: str, seed: int, config: SimulationConfig, segments: SegmentConfig) -> str:
    # The code is part of the key: a changed simulator must not reuse features of the old one.
    described = {"variant": variant, "seed": seed, "config": asdict(config), "segments": asdict(segments),
                 "bands": SWEEP_BANDS, "version": __version__, "code": _feature_code()}
    return json_key(described, default=str)


def _subject_features(path: Path, subject: int, variant: str, seed: int, config: SimulationConfig,
                      segments: SegmentConfig) -> dict[str, np.ndarray]:
    """Band power of one simulated subject's EEG and EOG, cached at ``path``; the signals are discarded."""
    if path.is_file():
        with np.load(path) as stored:
            return dict(stored)
    recording = simulate_subject(subject, variant=variant, seed=seed, config=config)
    cut = segment_trials(recording["data"], segments, DEAP)  # (trials, segments, channels, times)
    rows = cut.reshape(-1, *cut.shape[2:])
    features = {name: band_power(rows[:, DEAP.picks(name)], DEAP.sfreq, SWEEP_BANDS).reshape(len(rows), -1)
                for name in ("eeg", "eog")}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda stream: np.savez(stream, **features))
    return features


def _truth(subject: int, variant: str, seed: int, config: SimulationConfig, segments: SegmentConfig,
           target: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels and oracle probabilities of one subject's segments (no signal is simulated)."""
    latents = simulate_latents(subject, variant=variant, seed=seed, config=config)
    scales = [DEAP.rating_column(scale) for scale in ("valence", "arousal")]
    latent = Latent(subject=subject, trial=np.stack([latents.rated_valence, latents.rated_arousal], axis=1),
                    per_second=latents.signal_per_second,
                    signal_trial=np.stack([latents.signal_valence, latents.signal_arousal], axis=1),
                    rating_scale=config.rating_scale, rating_bias=latents.traits.rating_bias[scales],
                    rating_noise_sd=latents.traits.rating_noise_sd)
    # The oracle knows the state that drives each segment's signals, the most
    # any model of that segment could know (it is not the state the rating
    # reports: that one is the trial's, and under the null variant another).
    state = segment_latent(latent, segments, DEAP)  # (trials, segments, 2)
    column = ("valence", "arousal").index(target)
    oracle = label_probability(latent, state, segments.threshold)[..., column]
    labels = latents.labels[:, DEAP.rating_column(target)] > segments.threshold
    return np.repeat(labels.astype(np.int64), state.shape[1]), oracle.reshape(-1)


def band_power_cohort(n_subjects: int, *, target: str = "valence", variant: str = "default", seed: int = 0,
                  config: SimulationConfig | None = None,
                  segments: SegmentConfig = SegmentConfig(), workers: int = 1) -> BandPowerData:
    """Simulate subjects ``1..n_subjects`` in memory and return their pocket features.

    The features of each subject are cached under
    ``$MKDBOOK_HOME/pocket/<key>/sNN.npz``, the key a hash of every argument
    that shapes the signals and of the package version; labels and the oracle
    are recomputed (cheaply) every time. Subject ``s`` is the subject ``s``
    of :func:`~mkdbook.data.simulate.simulate_cohort` with the same arguments.

    Parameters
    ----------
    n_subjects : int
    target : str
        ``"valence"`` or ``"arousal"``.
    variant, seed, config
        As :func:`~mkdbook.data.simulate.simulate_subject` takes them.
    segments : SegmentConfig
        Segment length, baseline and label threshold.
    workers : int
        Processes (joblib) that simulate the subjects not yet cached; the features do not depend on it.

    Returns
    -------
    BandPowerData
    """
    check_int("n_subjects", n_subjects, 1)
    check_option("target", target, ("valence", "arousal"))
    workers = check_int("workers", workers, 1)
    config = config or SimulationConfig()
    folder = home() / "pocket" / _cache_key(variant, seed, config, segments)
    paths = {subject: folder / f"s{subject:02d}.npz" for subject in range(1, n_subjects + 1)}
    # Simulating the signals is the cost: the workers fill the cache, the loop below reads it.
    Parallel(n_jobs=workers)(delayed(_subject_features)(path, subject, variant, seed, config, segments)
                             for subject, path in paths.items() if not path.is_file())
    rows = []
    for subject, path in paths.items():
        labels, oracle = _truth(subject, variant, seed, config, segments, target)
        trials = np.repeat(np.arange(DEAP.n_trials), len(labels) // DEAP.n_trials)
        rows.append({**_subject_features(path, subject, variant, seed, config, segments), "labels": labels,
                     "oracle": oracle, "subject": np.full(len(labels), subject), "trial": trials})
    return BandPowerData(**{k: np.concatenate([r[k] for r in rows]) for k in rows[0]}, target=target,
                      description=f"simulated, variant '{variant}', {n_subjects} subjects, seed {seed}")


def with_ratings(data: BandPowerData, n_subjects: int, config: SimulationConfig, *, variant: str = "default",
                 seed: int = 0, segments: SegmentConfig = SegmentConfig()) -> BandPowerData:
    """The same signals, rated under ``config``: new labels and oracle, the features of ``data``.

    Only valid when ``config`` differs from the configuration ``data`` was
    simulated with in :data:`RATING_FIELDS` alone, which the caller asserts
    by calling this; the simulator draws ratings from a stream of their own,
    so such cohorts have identical signals (a test checks it).
    """
    labels, oracle = zip(*(_truth(s, variant, seed, config, segments, data.target)
                           for s in range(1, n_subjects + 1)))
    return replace(data, labels=np.concatenate(labels), oracle=np.concatenate(oracle))


def trial_folds(data: BandPowerData, n_folds: int, seed: int) -> np.ndarray:
    """Fold and labelling order of every trial, per subject: ``(fold, order)`` per segment.

    Each subject's trials are shuffled within each block of ten videos (one
    quadrant of the stimulus design), so every fold and every prefix of the
    labelling order mixes the four quadrants alike; neither depends on the
    labels, so folds are the same whatever the rating noise.

    Returns
    -------
    ndarray of int, shape (n_segments, 2)
    """
    out = np.empty((len(data.subject), 2), np.int64)
    for subject in data.subjects:
        rng = np.random.default_rng([seed, int(subject)])
        place = np.empty(DEAP.n_trials, np.int64)
        for block in range(0, DEAP.n_trials, 10):
            place[block + rng.permutation(10)] = np.arange(10)
        order = place * (DEAP.n_trials // 10) + np.arange(DEAP.n_trials) // 10
        rows = data.subject == subject
        out[rows, 0] = (place % n_folds)[data.trial[rows]]
        out[rows, 1] = order[data.trial[rows]]
    return out


@dataclass(frozen=True)
class BandPowerNetConfig:
    """How pocket networks are trained: full-batch Adam for a fixed number of steps.

    No early stopping, so no validation set: every run gets the same budget,
    chosen before any result was seen.

    Attributes
    ----------
    hidden : int, default 8
        Width of the hidden layer (the features).
    steps : int, default 200
    lr : float, default 0.01
    weight_decay : float, default 0.001
    temperature : float, default 1.0
        Of the KL term (the paper's value).
    n_folds : int, default 5
        Folds of each subject's trials.
    """

    hidden: int = 8
    steps: int = 200
    lr: float = 0.01
    weight_decay: float = 0.001
    temperature: float = 1.0
    n_folds: int = 5

    def __post_init__(self) -> None:
        check_int("hidden", self.hidden, 1)
        check_int("steps", self.steps, 1)
        check_number("lr", self.lr, 0.0, strict=True)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_number("temperature", self.temperature, 0.0, strict=True)
        check_int("n_folds", self.n_folds, 2, DEAP.n_trials)


class BandPowerNet(nn.Module):
    """``copies`` independent networks of one hidden layer, stored side by side.

    Copy ``k`` maps its inputs ``x[k]`` to features ``relu(x[k] W1[k] + b1[k])``
    and logits ``features W2[k] + b2[k]``. Every copy starts from the same
    weights, those of :class:`torch.nn.Linear` layers built under ``seed``.
    """

    def __init__(self, n_inputs: int, hidden: int = 8, copies: int = 1, seed: int = 0) -> None:
        super().__init__()
        with seeded(seed):
            first, second = nn.Linear(n_inputs, hidden), nn.Linear(hidden, 2)
        def stacked(tensor: Tensor) -> nn.Parameter:  # (copies, in, out), the layout of baddbmm
            return nn.Parameter(tensor.detach().T.expand(copies, *tensor.T.shape).clone())
        self.w1, self.b1 = stacked(first.weight), stacked(first.bias[:, None])
        self.w2, self.b2 = stacked(second.weight), stacked(second.bias[:, None])

    def forward(self, x: Tensor, copies: Tensor | slice = slice(None)) -> ModelOutput:
        """Inputs (copies, batch, n_inputs) of the ``copies`` chosen (all by default): logits and features."""
        features = torch.relu(torch.baddbmm(self.b1[copies], x, self.w1[copies]))
        return ModelOutput(torch.baddbmm(self.b2[copies], features, self.w2[copies]), features)


def train_band_power_nets(x: np.ndarray, y: np.ndarray, rows: list[np.ndarray], config: BandPowerNetConfig, seed: int,
                 teacher_logits: list[np.ndarray | None] | None = None) -> BandPowerNet:
    """Train one pocket network per entry of ``rows``, side by side, on labels or on a teacher too.

    Copy ``k`` is trained on the segments ``rows[k]`` of ``x[k]``. Without a
    teacher its loss is :func:`~mkdbook.distillation.losses.cross_entropy`; with
    ``teacher_logits[k]`` (one row per segment of ``rows[k]``) it is
    :func:`~mkdbook.distillation.losses.student_loss` with the Hinton weighting (CE + KL at
    ``config.temperature``). A segment labelled :data:`UNLABELLED` for a copy
    (a segment of its transfer set) enters that copy's KL term but not its
    cross-entropy, which is the mean over the copy's labelled segments. The loss minimised is the sum of the copies'
    losses: each weight belongs to one copy, and Adam and weight decay act on
    every weight separately, so the copies train exactly as they would one by
    one, in one loop instead of many (a test checks it).

    Parameters
    ----------
    x : ndarray, shape (copies, n_segments, n_inputs)
    y : ndarray of int, shape (n_segments,) or (copies, n_segments)
        Labels, the same for every copy or one row per copy.
    rows : list of ndarray of int
        Training segments of each copy.
    config : BandPowerNetConfig
    seed : int
        Initial weights, the same for every copy.
    teacher_logits : list of (ndarray or None), optional

    Returns
    -------
    BandPowerNet
        In evaluation mode.
    """
    teachers = teacher_logits or [None] * len(rows)
    net = BandPowerNet(x.shape[2], config.hidden, len(rows), seed)
    inputs = torch.as_tensor(x, dtype=torch.float32)
    targets = torch.as_tensor(np.broadcast_to(y, (len(rows), x.shape[1])).copy(), dtype=torch.int64)
    # Copies with as many training segments (and labelled ones) as each other,
    # and alike in having a teacher or not, are one batch for the loss: the
    # mean over such a batch times the number of copies in it is the sum of
    # their means.
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for k, (r, t) in enumerate(zip(rows, teachers)):
        labelled = int((targets[k, r] != UNLABELLED).sum())
        groups.setdefault((len(r), labelled, t is not None), []).append(k)
    batches = []
    for (_, _, taught), members in groups.items():
        picks = torch.as_tensor(np.stack([rows[k] for k in members]), dtype=torch.int64)
        teacher = ModelOutput(torch.as_tensor(np.concatenate([teachers[k] for k in members]),
                                              dtype=torch.float32)) if taught else None
        chosen = torch.as_tensor(members)
        # Only the training segments of each copy go through the network, gathered once.
        batches.append((chosen, inputs[chosen[:, None], picks], targets[chosen[:, None], picks].reshape(-1), teacher))
    loss_config = DistillationLossConfig.hinton(config.temperature)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    threads = torch.get_num_threads()
    # Operations this small run fastest on one thread: splitting each of them
    # over several costs more in synchronisation than it saves, many times
    # more on a busy machine.
    torch.set_num_threads(1)
    try:
        for _ in range(config.steps):
            optimizer.zero_grad()
            loss = torch.zeros(())
            for members, x_batch, y_batch, teacher in batches:
                batch = net(x_batch, members).logits.reshape(-1, 2)
                mean = cross_entropy(batch, y_batch) if teacher is None else \
                    student_loss(ModelOutput(batch), teacher, y_batch, None, loss_config).total
                loss = loss + len(members) * mean
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


@torch.no_grad()
def _logits(net: BandPowerNet, x: np.ndarray) -> np.ndarray:
    return net(torch.as_tensor(x, dtype=torch.float32)).logits.numpy()


def _probability(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits), dim=-1)[..., 1].numpy()


def _standardise(x: np.ndarray, subject: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per subject, with the mean and SD of that subject's training segments only."""
    out = np.empty_like(x, dtype=np.float32)
    for s in np.unique(subject):
        rows, fit = subject == s, (subject == s) & train
        mean, sd = x[fit].mean(axis=0), x[fit].std(axis=0) + 1e-8
        out[rows] = (x[rows] - mean) / sd
    return out


def training_rows(data: BandPowerData, fold: int, seed: int, n_folds: int, n_train: int | None = None,
                  transfer: bool = False) -> np.ndarray:
    """Boolean mask of the labelled training segments of ``fold``.

    Every trial outside the test fold, or with ``n_train``, the first
    ``n_train`` of each subject's training trials in the labelling order of
    :func:`trial_folds`. With ``transfer``, the fold's other training trials
    instead: the unrated transfer set.
    """
    folds = trial_folds(data, n_folds, seed)
    train = folds[:, 0] != fold
    if n_train is not None:
        check_int("n_train", n_train, 1)
        for s in data.subjects:
            mine = train & (data.subject == s)
            allowed = np.sort(np.unique(folds[mine, 1]))[:n_train]
            train[mine] = np.isin(folds[mine, 1], allowed) != transfer
    return train


def run_folds(data: BandPowerData, seed: int, config: BandPowerNetConfig = BandPowerNetConfig(),
              n_train: int | None = None, transfer: bool = False) -> dict[str, np.ndarray]:
    """Every arm of :data:`ARMS` on every fold: out-of-fold class-1 probabilities of every segment.

    Each fold trains a teacher (EEG+EOG) on its labelled segments, then four
    EOG students from the same initial weights: on labels alone, and with
    the teacher, the shuffled teacher and the oracle. Every segment is tested
    once, by the networks of the fold that holds it out.

    Parameters
    ----------
    data : BandPowerData
    seed : int
        Seeds the folds, the initial weights and the shuffling of the teacher.
    config : BandPowerNetConfig
    n_train : int, optional
        Labelled training trials per subject (all of the training folds'
        trials by default); teacher and students see the same ones.
    transfer : bool, default False
        With ``n_train``: the fold's other training trials are a transfer
        set, recorded but unrated. The teacher and the student on labels
        alone never see them; the taught students learn from the teacher's
        (shuffled teacher's, oracle's) soft labels on the rated trials and
        the transfer set, and from labels on the rated trials only. Every
        network's standardisation is fitted on both (it uses no label).

    Returns
    -------
    dict of str to ndarray, shape (n_segments,)
        One entry per arm, and ``"fold"``: the fold that tests each segment.
    """
    n_folds = config.n_folds
    if transfer and n_train is None:
        raise ValueError("a transfer set needs n_train: the rated trials per subject")
    rated = np.stack([training_rows(data, f, seed, n_folds, n_train) for f in range(n_folds)])
    seen = rated.copy()  # the segments whose recordings the students read in training
    if transfer:
        seen |= np.stack([training_rows(data, f, seed, n_folds, n_train, transfer=True) for f in range(n_folds)])
    test = trial_folds(data, n_folds, seed)[:, 0]
    rows, taught_rows = [np.flatnonzero(t) for t in rated], [np.flatnonzero(t) for t in seen]
    both = np.stack([_standardise(np.hstack([data.eeg, data.eog]), data.subject, t) for t in seen])
    eog = np.stack([_standardise(data.eog, data.subject, t) for t in seen])

    teacher = _logits(train_band_power_nets(both, data.labels, rows, config, seed), both)
    taught = [teacher[f, r] for f, r in enumerate(taught_rows)]
    shuffle = np.random.default_rng([seed, 1])
    shuffled = [t[shuffle.permutation(len(t))] for t in taught]
    p = np.clip(data.oracle, 1e-4, 1 - 1e-4)
    oracle = np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1)
    teachers = {"student": [None] * n_folds, "distilled": taught, "shuffled": shuffled,
                "oracle": [oracle[r] for r in taught_rows]}
    labels = np.where(rated, data.labels, UNLABELLED)  # (fold, segment): the transfer set is unrated
    students = _probability(_logits(train_band_power_nets(np.concatenate([eog] * len(teachers)),
                                                 np.concatenate([labels] * len(teachers)),
                                                 rows + taught_rows * (len(teachers) - 1), config, seed,
                                                 [t for ts in teachers.values() for t in ts]),
                                    np.concatenate([eog] * len(teachers))))
    tested = test[None, :] == np.arange(n_folds)[:, None]  # (fold, segment)
    out = {"fold": test, "teacher": (_probability(teacher) * tested).sum(0), "ceiling": data.oracle.copy()}
    for a, arm in enumerate(teachers):
        out[arm] = (students[a * n_folds:(a + 1) * n_folds] * tested).sum(0)
    return out
