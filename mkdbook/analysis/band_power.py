"""Band-power features and two fast classifiers: the baseline of chapter 2.

Chapter 2 needs classifiers that train in seconds, so that the split, not
the model, is what the chapter is about. Log band power per channel
(theta, alpha, beta, gamma) is the classic feature set of the DEAP
literature (Koelstra et al., 2012).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.signal import welch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from mkdbook.core.checks import check_option
from mkdbook.data.segments import STANDARDISATIONS, SegmentSet
from mkdbook.splits import Split

#: Frequency bands in Hz (DEAP's EEG is band-passed 4-45 Hz).
BANDS: dict[str, tuple[float, float]] = {
    "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 45.0),
}


def band_power(signals: np.ndarray, sfreq: float,
               bands: Mapping[str, tuple[float, float]] = BANDS,
               chunk: int = 2048) -> np.ndarray:
    """Log10 mean power of every channel in every band (Welch, 2-s windows).

    Parameters
    ----------
    signals : ndarray, shape (n_segments, n_channels, n_times)
        May be a memory map; it is read ``chunk`` segments at a time.
    sfreq : float
        Sampling rate in Hz.
    bands : mapping of str to (low, high)
        Band edges in Hz.
    chunk : int
        Segments per Welch call, to bound memory.

    Returns
    -------
    ndarray, shape (n_segments, n_channels, n_bands)
    """
    out = np.empty((len(signals), signals.shape[1], len(bands)), np.float64)
    for start in range(0, len(signals), chunk):
        block = np.asarray(signals[start:start + chunk], dtype=np.float32)
        # SciPy's Welch over the whole block at once; MNE's loops per channel.
        freqs, psd = welch(block, fs=sfreq, nperseg=int(2 * sfreq), axis=-1)
        for b, (low, high) in enumerate(bands.values()):
            in_band = (freqs >= low) & (freqs < high)
            out[start:start + chunk, :, b] = np.log10(psd[..., in_band].mean(axis=-1) + 1e-30)
    return out


def modality_band_power(data: SegmentSet, modality: str,
                        bands: Mapping[str, tuple[float, float]] = BANDS) -> np.ndarray:
    """Band power of one modality's channels for every segment, flattened per segment.

    Returns
    -------
    ndarray, shape (n_segments, n_channels * n_bands)
    """
    powers = band_power(data.modality(modality), data.sfreq, bands)
    return powers.reshape(len(powers), -1)


def make_classifier(name: str) -> Pipeline:
    """A standardise-then-classify pipeline by name.

    ``"logistic"``: L2-regularised logistic regression (C = 0.1), a linear
    model that cannot memorise individual segments.
    ``"knn"``: 5-nearest neighbours, which answers with the labels of the most
    similar training segments: exactly what a leaky split rewards.
    """
    classifiers = {"logistic": lambda: LogisticRegression(C=0.1, max_iter=2000),
                   "knn": lambda: KNeighborsClassifier(n_neighbors=5)}
    check_option("classifier", name, tuple(classifiers))
    return make_pipeline(StandardScaler(), classifiers[name]())


def standardise_features(features: np.ndarray, data: SegmentSet, split: Split, mode: str,
                         modalities: tuple[str, ...] = ("eeg", "eog"),
                         bands: Mapping[str, tuple[float, float]] = BANDS) -> np.ndarray:
    """Band-power features standardised the way the networks' inputs are (:class:`~mkdbook.training.standardisation.ChannelScaler`).

    Parameters
    ----------
    features : ndarray, shape (n_segments, n_features)
        :func:`modality_band_power` of each of ``modalities``, side by side.
    data : SegmentSet
    split : Split
        Statistics come from ``split.train`` only.
    mode : {"subject", "baseline", "global"}
        ``"subject"``: each feature z-scored with the mean and standard
        deviation of the subject's own training segments (a subject without
        training trials gets the pooled training statistics).
        ``"baseline"``: dividing a channel by its baseline standard deviation
        :math:`s_b` divides its power by :math:`s_b^2`, so each log band power
        drops by :math:`2 \\log_{10} s_b` (centring changes no band above 0 Hz):
        exactly the features of the baseline-normalised signal.
        ``"global"``: unchanged (the classifier's pipeline z-scores with the
        pooled training statistics, as it does after every mode).

    Returns
    -------
    ndarray, same shape as ``features``
    """
    check_option("standardise", mode, STANDARDISATIONS)
    features = np.asarray(features, dtype=np.float64)
    if mode == "global":
        return features
    if mode == "baseline":
        if data.baseline is None:
            raise ValueError("standardise='baseline' needs the trials' baseline statistics, which "
                             "these segments lack")
        picks = [c for name in modalities for c in data.layout.picks(name)]
        row = np.searchsorted(data.baseline.trial_id, data.trial_id)
        log_sd = np.log10(data.baseline.std[:, picks] + 1e-6)[row]
        return features - 2 * np.repeat(log_sd, len(bands), axis=1)
    train = np.asarray(split.train)
    pooled = features[train].mean(0), features[train].std(0) + 1e-12
    out = (features - pooled[0]) / pooled[1]
    for subject in data.subjects:
        own = train[data.subject[train] == subject]
        if len(own):
            rows = data.subject == subject
            out[rows] = (features[rows] - features[own].mean(0)) / (features[own].std(0) + 1e-12)
    return out


def fit_classifier(features: np.ndarray, labels: np.ndarray, split: Split,
                   classifier: str = "logistic") -> Pipeline:
    """Fit the :func:`make_classifier` pipeline ``classifier`` on ``split.train`` only.

    Its ``predict_proba(features[split.test])`` gives the test probabilities
    that chapter 3 compares with the teacher's, segment by segment.
    """
    return make_classifier(classifier).fit(features[split.train], labels[split.train])


def score_classifier(features: np.ndarray, labels: np.ndarray, split: Split,
                     classifier: str = "logistic") -> dict[str, float]:
    """Fit a classifier on ``split.train`` and score it on ``split.test``.

    Parameters
    ----------
    features : ndarray, shape (n_segments, n_features)
        Standardise them first with :func:`standardise_features` to match a
        network's input standardisation.
    labels : ndarray of int, shape (n_segments,)
    split : Split
        Only its train and test sets are used (nothing is tuned).
    classifier : str
        A name understood by :func:`make_classifier`.

    Returns
    -------
    dict
        ``accuracy``, ``f1`` (macro), ``balanced_accuracy``, ``auc`` (NaN
        when the test set holds one class), ``n_test`` (segments) and
        ``majority`` (the accuracy of always answering the training set's
        majority class).
    """
    model = fit_classifier(features, labels, split, classifier)
    predicted = model.predict(features[split.test])
    truth = labels[split.test]
    majority = np.bincount(labels[split.train], minlength=2).argmax()
    both = len(np.unique(truth)) == 2
    return {
        "accuracy": accuracy_score(truth, predicted),
        "f1": f1_score(truth, predicted, average="macro"),
        "balanced_accuracy": balanced_accuracy_score(truth, predicted) if both else float("nan"),
        "auc": roc_auc_score(truth, model.predict_proba(features[split.test])[:, 1]) if both else float("nan"),
        "n_test": len(truth),
        "majority": float(np.mean(truth == majority)),
    }
