"""The per-modality convolutional front end: raw signal in, token sequence out.

Zhang & Lu (2025) open each stream with two convolutions,
``CNN(ch1, f1)(CNN(ch2, f2)(X))``, a temporal filter and a spatial filter with
dropout on every convolution, and hand the resulting feature maps to a
transformer. We read the inner convolution as a bank of temporal filters with
kernel ``(1, k)`` shared by every electrode and the outer one as a spatial
filter with kernel ``(n_channels, 1)`` that mixes all electrodes and temporal
filters into one ``d_model``-wide vector per time step, the same factorisation
as the first block of DeepConvNet (Schirrmeister et al., 2017).

The paper leaves the temporal convolution's nonlinearity open. We give it
the one of Schirrmeister et al.'s ShallowConvNet: square, average, log. Each
token carries the log-energy of every filter's output over its hop, a learned
band power per electrode, which is where EEG's emotional information is
usually found (differential entropy and band-power features). A signed filter
output read once per token does not suffice: the layer norms behind it divide
out a token's amplitude, and with it the band power (see chapter 3).

The temporal filters are band-pass filters whose two edges are learned
(SincNet, Ravanelli & Bengio, 2018; for EEG, Borra et al., 2020), initialised
as a bank of log-spaced bands from theta to the top of the EMG range. Free
filter taps, the literal reading, do not survive training: Adam moves every
tap by about its learning rate per step whatever the gradient's size, taps of
a 64-sample band-pass filter are a few hundredths, and within an epoch or two
the filters turn to noise, whose log-energy is dominated by eye movements
(chapter 3 measures it). Two edges per filter move in hertz and stay
band-pass filters.

The convolutions are computed in their cheapest equivalent form:

* the temporal filter runs over each electrode on its own, evaluated every
  ``hop / energy_points`` samples rather than at every sample, which is
  exactly the literal ``(1, k)`` convolution sampled at that stride; it runs
  on frames of the stride (:func:`strided_filter_bank`);
* the spatial filter, a ``(n_channels, 1)`` kernel over ``n_temporal_filters``
  log-energy maps, is a dense layer applied to each time step.

A 4-s segment at 128 Hz therefore becomes 16 tokens (one per 250 ms) instead
of 512, which is what makes the transformer behind it affordable on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mkdbook.core.checks import check_number, check_option
from mkdbook.models.filters import FILTER_BANKS, FreeFilterBank, SincFilterBank


@dataclass(frozen=True)
class FrontEndConfig:
    """Hyper-parameters of :class:`ConvFrontEnd` (the paper gives none of them).

    Attributes
    ----------
    n_temporal_filters : int
        Temporal filters per electrode (the inner convolution's output maps).
        Default 8: enough for a filter per classic EEG band (theta, alpha, two
        beta, gamma) with spares, and the spatial layer's input grows with
        ``n_channels * n_temporal_filters``.
    temporal_kernel_s : float
        Length of the temporal filters in seconds. Default 0.5 s (64 samples
        at 128 Hz): two cycles of the 4 Hz lower edge of DEAP's band-pass,
        so a filter can resolve the slowest rhythm the data still contain.
    hop_s : float
        Seconds between consecutive tokens (the temporal convolution's
        stride). Default 0.25 s (32 samples at 128 Hz): 16 tokens per 4-s
        segment, the 0.5-s filter windows overlapping by half, the framing
        of a short-time Fourier transform, in which every sample is covered
        equally often. A 0.125-s hop (32 tokens) costs about 1.5 times as much per
        training step for a sequence twice as long.
    energy_points : int
        Filter outputs per token whose squares are averaged into the token's
        log-energy (the temporal filter runs at a stride of
        ``hop / energy_points`` samples; must divide the hop in samples).
        Default 4, a stride of 8 samples at 128 Hz: gamma (30-45 Hz), the
        fastest band, decorrelates within about two samples, so outputs 8
        samples apart are close to independent, and 4 of them per token give
        64 per 4-s segment, while the front end costs an eighth of what
        filtering every sample would.
    filter_bank : str
        ``"sinc"`` (default): band-pass filters with learned edges
        (:class:`~mkdbook.models.filters.SincFilterBank`). ``"free"``:
        every tap a parameter
        (:class:`~mkdbook.models.filters.FreeFilterBank`), the literal
        reading of the paper's convolution, kept to show what it does in
        training.
    band_edges_hz : tuple of float
        Lowest and highest edge of the initial sinc bank: the
        ``n_temporal_filters`` bands split this range into log-spaced parts.
        Default (4, 60) Hz: from the 4 Hz lower edge of DEAP's EEG band-pass
        to just below the 64 Hz Nyquist frequency, so that the top bands see
        the periocular muscle activity (20-64 Hz) that EOG electrodes record.
    conv_dropout : float
        Dropout after the spatial convolution, dropping whole feature maps
        (:class:`SharedMaskDropout`). Default 0.25, the lower of the two rates
        EEGNet recommends (Lawhern et al., 2018): the transformer behind the
        front end is regularised too. The paper drops out after every
        convolution; we do not after the temporal one, whose outputs are
        log-energies: zero is not a missing value there but an arbitrary
        level, and zeroing a quarter of them moves a token further than the
        between-segment differences that carry emotion, so that in training
        mode the answers are close to noise and the best epoch comes later
        (chapter 3).
    energy_dropout : float
        Dropout on the log-energy maps, dropping whole (electrode, filter)
        maps: the paper's dropout after the temporal convolution. Default 0.0,
        for the reason just given; kept to measure that reason.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    .. [2] Schirrmeister, R. T., et al. (2017). Deep learning with
       convolutional neural networks for EEG decoding and visualization.
       Human Brain Mapping, 38(11), 5391-5420.
    .. [3] Lawhern, V. J., et al. (2018). EEGNet: a compact convolutional
       neural network for EEG-based brain-computer interfaces. Journal of
       Neural Engineering, 15(5), 056013.
    """

    n_temporal_filters: int = 8
    temporal_kernel_s: float = 0.5
    hop_s: float = 0.25
    energy_points: int = 4
    filter_bank: str = "sinc"
    band_edges_hz: tuple[float, float] = (4.0, 60.0)
    conv_dropout: float = 0.25
    energy_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_option("filter_bank", self.filter_bank, FILTER_BANKS)
        for name in ("conv_dropout", "energy_dropout"):
            check_number(name, getattr(self, name), 0.0)


def seconds_to_samples(seconds: float, sfreq: float) -> int:
    """Round a duration to a whole, positive number of samples.

    Raises
    ------
    ValueError
        If the duration is shorter than one sample at ``sfreq``.
    """
    samples = round(seconds * sfreq)
    if samples < 1:
        raise ValueError(
            f"a duration of {seconds} s is shorter than one sample at sfreq={sfreq} Hz"
        )
    return samples


def strided_filter_bank(
    signals: Tensor, filters: Tensor, hop: int, left_pad: int, n_outputs: int
) -> Tensor:
    """Filter each signal with every filter, keeping every ``hop``-th output.

    Equal to ``F.conv1d(signals[:, None], filters[:, None], stride=hop,
    padding=left_pad)`` (zero padding, first ``n_outputs`` outputs), but
    computed on frames: the padded signal is cut into frames of ``hop``
    samples, read as ``hop`` channels, and a stride-1 convolution with
    ``ceil(k / hop)`` taps per channel does the filtering. CPU convolution
    kernels run a one-channel strided convolution several times slower than
    this ``hop``-channel form.

    Parameters
    ----------
    signals : Tensor, shape (S, T)
        One signal per row (every electrode of every segment).
    filters : Tensor, shape (F, k)
        The filter bank.
    hop : int
        Samples between consecutive outputs.
    left_pad : int
        Zeros before the first sample; the window of output ``n`` starts at
        sample ``n * hop - left_pad``.
    n_outputs : int
        Outputs per signal.

    Returns
    -------
    Tensor, shape (S, F, n_outputs)
    """
    n_filters, kernel = filters.shape
    frames_per_window = math.ceil(kernel / hop)
    # Zero taps round the filters up to whole frames; they read only padding or unused samples.
    filters = F.pad(filters, (0, frames_per_window * hop - kernel))
    n_frames = n_outputs + frames_per_window - 1
    right_pad = n_frames * hop - signals.shape[-1] - left_pad  # negative crops the tail
    padded = F.pad(signals, (left_pad, right_pad))
    # (S, hop, 1, n_frames) as a view: already the channels-last layout of a 2-d
    # convolution, which oneDNN reads in place; a channels-first copy of the
    # frames costs more than the convolution itself.
    frames = padded.view(signals.shape[0], 1, n_frames, hop).permute(0, 3, 1, 2)
    weight = filters.view(n_filters, frames_per_window, hop).permute(0, 2, 1).unsqueeze(2)
    return F.conv2d(frames, weight).squeeze(2)


#: Added to every mean square before the log. The inputs are standardised per
#: channel (unit variance), so the floor sits four orders of magnitude below a
#: channel's power; it only keeps the log and its gradient finite where a
#: signal is flat (a dead electrode).
LOG_ENERGY_FLOOR: float = 1e-4


def energy_stride(hop: int, points: int) -> int:
    """Samples between the filter outputs of :func:`filter_log_energy`, ``hop // points``.

    Raises
    ------
    ValueError
        If ``points`` is not a positive divisor of ``hop``.
    """
    if points < 1 or hop % points:
        raise ValueError(f"energy_points={points} must be a positive divisor of the hop ({hop} samples)")
    return hop // points


def filter_log_energy(
    signals: Tensor, filters: Tensor, hop: int, points: int, left_pad: int, n_tokens: int
) -> Tensor:
    """Log mean-square output of every filter over each hop of every signal.

    The filters are evaluated every ``hop // points`` samples; token ``n``
    averages the squares of outputs ``n * points`` to ``n * points + points - 1``
    and takes the log (plus :data:`LOG_ENERGY_FLOOR`): the square, mean-pool,
    log of ShallowConvNet (Schirrmeister et al., 2017) on a strided filter.

    Parameters
    ----------
    signals : Tensor, shape (S, T)
        One signal per row (every electrode of every segment).
    filters : Tensor, shape (F, k)
        The filter bank.
    hop : int
        Samples per token; ``points`` must divide it.
    points : int
        Filter outputs averaged per token.
    left_pad : int
        Zeros before the first sample; output ``m`` reads the window starting
        at sample ``m * (hop // points) - left_pad``.
    n_tokens : int
        Tokens per signal.

    Returns
    -------
    Tensor, shape (S, F, n_tokens)

    Raises
    ------
    ValueError
        If ``points`` does not divide ``hop``.
    """
    outputs = strided_filter_bank(signals, filters, energy_stride(hop, points), left_pad, n_tokens * points)
    energy = outputs.square().unflatten(-1, (n_tokens, points)).mean(dim=-1)
    return torch.log(energy + LOG_ENERGY_FLOOR)


class SharedMaskDropout(nn.Module):
    """Dropout whose mask is shared along chosen dimensions: drops whole maps, tokens or branches.

    With ``shared_dims=(2,)`` on ``(B, F, N)`` convolution maps it drops whole
    feature maps (spatial dropout, Tompson et al., 2015), the usual dropout
    for convolutions, whose neighbouring outputs are too correlated for
    element-wise masks to regularise much. With ``shared_dims=(1, 2)`` on
    ``(B, N, d)`` tokens it drops a whole residual branch per segment
    (stochastic depth, Huang et al., 2016). Either way the mask has far fewer
    entries than the activation, which matters on a CPU, where drawing one
    random number per activation costs more than the matrix products of a
    small network.

    Parameters
    ----------
    p : float
        Probability of dropping; kept values are scaled by ``1 / (1 - p)``.
    shared_dims : tuple of int
        Dimensions along which one mask value is shared (never 0, the batch).

    References
    ----------
    .. [1] Tompson, J., Goroshin, R., Jain, A., LeCun, Y., & Bregler, C.
       (2015). Efficient object localization using convolutional networks.
       Proceedings of CVPR 2015, 648-656.
    .. [2] Huang, G., Sun, Y., Liu, Z., Sedra, D., & Weinberger, K. Q. (2016).
       Deep networks with stochastic depth. ECCV 2016, 646-661.
    """

    def __init__(self, p: float, shared_dims: tuple[int, ...]) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability p={p} must lie in [0, 1)")
        if 0 in shared_dims:
            raise ValueError("shared_dims must not include the batch dimension 0")
        self.p = p
        self.shared_dims = shared_dims

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` with masked entries zeroed and the rest rescaled (training only)."""
        if not self.training or self.p == 0.0:
            return x
        mask_shape = [1 if dim in self.shared_dims else size for dim, size in enumerate(x.shape)]
        keep = 1.0 - self.p
        mask = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}, shared_dims={self.shared_dims}"


class ConvFrontEnd(nn.Module):
    """Temporal then spatial convolution, turning ``(B, C, T)`` into tokens.

    Parameters
    ----------
    n_channels : int
        Electrodes of the modality (the network's ``n_channels[name]``).
    n_times : int
        Samples per input segment.
    sfreq : float
        Sampling rate in Hz; converts the config's seconds to samples.
    d_model : int
        Width of each token: the spatial convolution's output maps, which is
        also the width of the transformer behind the front end.
    config : FrontEndConfig
        Filter counts, kernel length, hop and dropout.

    Attributes
    ----------
    filter_bank : nn.Module
        The temporal filters, a bank of :mod:`mkdbook.models.filters`;
        :attr:`temporal_filters` gives their taps.
    spatial : Linear
        The spatial filter: ``n_channels * n_temporal_filters`` maps to ``d_model``.
    n_tokens : int
        Tokens produced per segment, ``n_times // hop`` (16 for the defaults).

    Notes
    -----
    ``forward`` computes, for electrode ``c``, temporal filter ``f``, token
    ``n`` and stride ``s = hop / P`` (``P = energy_points``)::

        z[c, f, m] = sum_tau w_t[f, tau] x[c, m * s + tau - pad]
        e[c, f, n] = log(mean_{j < P} z[c, f, n * P + j] ** 2 + floor)
        token[n]   = dropout(ELU(LayerNorm(W_s . vec_{c, f}(dropout_e(e[:, :, n])))))

    ``pad = (k - s) // 2`` centres the ``P`` filter windows of token ``n`` on
    its hop.
    The layer norm scales each token on its own, so no statistic of other
    segments enters a token; centring features across segments is left to
    the batch norm of the readouts (:class:`~mkdbook.models.encoder.TapReadout`).

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    .. [2] Schirrmeister, R. T., et al. (2017). Deep learning with
       convolutional neural networks for EEG decoding and visualization.
       Human Brain Mapping, 38(11), 5391-5420.
    """

    def __init__(
        self, n_channels: int, n_times: int, sfreq: float, d_model: int, config: FrontEndConfig
    ) -> None:
        super().__init__()
        kernel = seconds_to_samples(config.temporal_kernel_s, sfreq)
        hop = seconds_to_samples(config.hop_s, sfreq)
        if kernel < hop:
            raise ValueError(
                f"temporal_kernel_s={config.temporal_kernel_s} is shorter than "
                f"hop_s={config.hop_s}: samples between tokens would never be seen"
            )
        stride = energy_stride(hop, config.energy_points)
        self.hop = hop
        self.energy_points = config.energy_points
        token_pad = (kernel - hop) // 2
        self.n_tokens = (n_times + 2 * token_pad - kernel) // hop + 1
        # The P windows of a token, hop / P apart, sit centred on its hop.
        self.padding = token_pad + (hop - stride) // 2
        self.n_channels = n_channels
        self.n_times = n_times
        if self.n_tokens < 1:
            raise ValueError(
                f"n_times={n_times} samples are too few for a {kernel}-sample temporal kernel"
            )
        # One filter bank shared by every electrode.
        if config.filter_bank == "sinc":
            self.filter_bank = SincFilterBank(config.n_temporal_filters, kernel, sfreq, config.band_edges_hz)
        else:
            self.filter_bank = FreeFilterBank(config.n_temporal_filters, kernel)
        # Drops whole (electrode, filter) maps of a segment.
        self.energy_dropout = SharedMaskDropout(config.energy_dropout, shared_dims=(2,))
        self.spatial = nn.Linear(n_channels * config.n_temporal_filters, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.activation = nn.ELU()
        # Drops whole output maps (token features) across all tokens of a segment.
        self.spatial_dropout = SharedMaskDropout(config.conv_dropout, shared_dims=(1,))

    @property
    def temporal_filters(self) -> Tensor:
        """The ``(n_temporal_filters, k)`` taps of the temporal filters, ready to plot."""
        return self.filter_bank()

    def forward(self, x: Tensor) -> Tensor:
        """Map a ``(B, n_channels, n_times)`` signal to ``(B, n_tokens, d_model)`` tokens."""
        if x.dim() != 3 or x.shape[1] != self.n_channels or x.shape[2] != self.n_times:
            raise ValueError(
                f"expected a (batch, {self.n_channels}, {self.n_times}) signal, "
                f"got shape {tuple(x.shape)}"
            )
        batch = x.shape[0]
        maps = filter_log_energy(
            x.reshape(batch * self.n_channels, self.n_times),
            self.filter_bank(),
            self.hop,
            self.energy_points,
            self.padding,
            self.n_tokens,
        )
        maps = self.energy_dropout(maps)
        # (B*C, F, N) -> (B, N, C*F): one vector of all electrodes' maps per token.
        # The maps are stored time-major (channels-last), so going through
        # (B, C, N, F) costs a single copy.
        maps = maps.transpose(1, 2).reshape(batch, self.n_channels, self.n_tokens, -1)
        maps = maps.transpose(1, 2).reshape(batch, self.n_tokens, -1)
        tokens = self.activation(self.norm(self.spatial(maps)))
        return self.spatial_dropout(tokens)
