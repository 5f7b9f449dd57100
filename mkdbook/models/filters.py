"""Temporal filter banks of the front end: band-pass filters with learned edges, or free taps.

A bank is a module without input that returns its ``(n_filters, kernel)``
taps; :class:`~mkdbook.models.frontend.ConvFrontEnd` filters every electrode
with them. :class:`SincFilterBank` is the default; :class:`FreeFilterBank`, the
literal reading of the paper's temporal convolution, is kept to show what
training does to it (chapter 3).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mkdbook.core.docstrings import fill_doc

#: Kinds of temporal filter bank accepted by :class:`~mkdbook.models.frontend.FrontEndConfig`.
FILTER_BANKS: tuple[str, ...] = ("sinc", "free")


@fill_doc
class SincFilterBank(nn.Module):
    """Band-pass filters with learned edges: windowed-sinc impulse responses (SincNet).

    Filter ``f`` passes ``[low_f, high_f]`` Hz; its taps are the difference of
    two ideal low-pass responses, ``2 high sinc(2 high t) - 2 low sinc(2 low
    t)``, sampled at ``t = (n - (k - 1) / 2) / sfreq``, times a Hamming
    window, divided by ``sfreq`` for unit gain in the pass band. Only the
    edges are parameters: ``low = min_hz + |low_hz|`` and ``high = low +
    min_hz + |band_hz|``, clipped below Nyquist, as in Ravanelli & Bengio
    (2018).

    Parameters
    ----------
    %(filter_bank)s
    %(sfreq)s
    band_edges_hz : tuple of float
        Lowest and highest edge of the initial bank; the bands split it into
        ``n_filters`` log-spaced parts.

    References
    ----------
    .. [1] Ravanelli, M., & Bengio, Y. (2018). Speaker recognition from raw
       waveform with SincNet. IEEE Spoken Language Technology Workshop,
       1021-1028.
    .. [2] Borra, D., Fantozzi, S., & Magosso, E. (2020). Interpretable and
       lightweight convolutional neural network for EEG decoding: application
       to movement execution and imagination. Neural Networks, 129, 55-74.
    """

    #: Smallest lower edge and smallest band width, in Hz.
    min_hz: float = 1.0

    def __init__(self, n_filters: int, kernel: int, sfreq: float, band_edges_hz: tuple[float, float]) -> None:
        super().__init__()
        low, high = band_edges_hz
        if not self.min_hz <= low < high < sfreq / 2:
            raise ValueError(
                f"band_edges_hz={band_edges_hz} must rise from at least {self.min_hz} Hz "
                f"to below the Nyquist frequency ({sfreq / 2} Hz)"
            )
        edges = torch.logspace(math.log10(low), math.log10(high), n_filters + 1, dtype=torch.float64)
        self.sfreq = sfreq
        self.low_hz = nn.Parameter((edges[:-1] - self.min_hz).float())
        self.band_hz = nn.Parameter((edges.diff() - self.min_hz).clamp(min=0.0).float())
        self.register_buffer("times", (torch.arange(kernel) - (kernel - 1) / 2) / sfreq, persistent=False)
        self.register_buffer("window", torch.hamming_window(kernel, periodic=False), persistent=False)

    def edges(self) -> tuple[Tensor, Tensor]:
        """Return the current lower and upper edges in Hz, each of shape ``(n_filters,)``."""
        low = self.min_hz + self.low_hz.abs()
        high = (low + self.min_hz + self.band_hz.abs()).clamp(max=self.sfreq / 2)
        return low, high

    def forward(self) -> Tensor:
        """Return the ``(n_filters, kernel)`` taps of the bank."""
        low, high = (edge[:, None] for edge in self.edges())
        response = 2 * high * torch.sinc(2 * high * self.times) - 2 * low * torch.sinc(2 * low * self.times)
        return response * self.window / self.sfreq


@fill_doc
class FreeFilterBank(nn.Module):
    """Temporal filters whose every tap is a parameter, initialised like ``nn.Conv1d``'s weight.

    Parameters
    ----------
    %(filter_bank)s
    """

    def __init__(self, n_filters: int, kernel: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(kernel)
        self.taps = nn.Parameter(torch.empty(n_filters, kernel).uniform_(-bound, bound))

    def forward(self) -> Tensor:
        """Return the ``(n_filters, kernel)`` taps."""
        return self.taps
