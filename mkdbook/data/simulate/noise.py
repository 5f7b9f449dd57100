"""Coloured noise: Gaussian series of a given amplitude spectrum, on the time grid of one trial."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mkdbook.data.layout import DEAP

_TIMES = np.arange(DEAP.n_samples) / DEAP.sfreq
_FREQS = np.fft.rfftfreq(DEAP.n_samples, d=1.0 / DEAP.sfreq)


def _lognormal(rng: np.random.Generator, median: float, sd: float, size=None) -> np.ndarray | float:
    return median * np.exp(rng.normal(0.0, sd, size=size))


@dataclass(frozen=True)
class _Spectrum:
    """A random spectrum stored only over the bins where it has power (``support``)."""

    support: slice
    values: np.ndarray

    def scattered(self, leading: tuple = (...,)) -> np.ndarray:
        """The full rfft spectrum (zeros off the support) of the series picked by ``leading``."""
        values = self.values[leading]
        full = np.zeros(values.shape[:-1] + (_FREQS.size,), dtype=complex)
        full[..., self.support] = values
        return full


def _random_spectrum(rng: np.random.Generator, amplitude: np.ndarray, leading_shape: tuple[int, ...],
                     mixing: np.ndarray | None = None) -> _Spectrum:
    """Random complex spectrum with the given amplitude, optionally mixed across channels.

    Only frequencies where some amplitude is non-zero are drawn, which keeps
    narrow rhythms cheap. With ``mixing`` (channels x channels), axis -2 is
    channels and the draws are mixed before the amplitude is applied, so every
    frequency has the spatial correlation ``mixing @ mixing.T``. The expected
    variance of a series is ``4 * sum(amplitude**2) / N**2`` (see
    :func:`_amplitude_for_rms`).
    """
    nonzero = np.flatnonzero(np.any(np.reshape(amplitude, (-1, _FREQS.size)) > 0, axis=0))
    support = slice(nonzero[0], nonzero[-1] + 1)
    draws = rng.standard_normal(leading_shape + (support.stop - support.start, 2))
    if mixing is not None:
        draws = np.moveaxis(np.tensordot(mixing, draws, axes=([1], [-3])), 0, -3)
    values = np.ascontiguousarray(draws).view(complex)[..., 0] * amplitude[..., support]
    return _Spectrum(support, values)


def _to_series(spectrum: np.ndarray) -> np.ndarray:
    return np.fft.irfft(spectrum, n=DEAP.n_samples, axis=-1)


def _noise_with_spectrum(rng: np.random.Generator, amplitude: np.ndarray,
                         leading_shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian series whose amplitude spectrum is ``amplitude`` (broadcast over leading axes)."""
    return _to_series(_random_spectrum(rng, amplitude, leading_shape).scattered())


def _amplitude_for_rms(shape: np.ndarray, rms: float, band: tuple[float, float] | None = None) -> np.ndarray:
    """Scale a spectral shape so the series' expected RMS within ``band`` is ``rms``."""
    inside = np.ones(_FREQS.size, bool) if band is None else (_FREQS >= band[0]) & (_FREQS <= band[1])
    power = np.sum(shape[..., inside] ** 2, axis=-1, keepdims=True)
    return shape * rms * DEAP.n_samples / (2.0 * np.sqrt(power))


def _peak_shape(centre_hz: float, width_hz: float) -> np.ndarray:
    power = np.exp(-0.5 * ((_FREQS - centre_hz) / width_hz) ** 2)
    # Bins beyond three widths hold 0.3 % of the power: not drawn at all.
    return np.where(np.abs(_FREQS - centre_hz) <= 3 * width_hz, np.sqrt(power), 0.0)
