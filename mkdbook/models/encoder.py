"""One modality's stream: front end, transformer encoder, and readouts of chosen layers.

The teacher runs two streams (EOG and EEG), the student and the reference
networks one. A stream returns the output of *every* encoder layer, so the
fusion modules can tap features at the depths their configuration names;
:class:`TapReadout` turns one layer's token sequence into the vector a fusion
module consumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mkdbook.core.checks import check_option
from mkdbook.models.frontend import ConvFrontEnd, FrontEndConfig, SharedMaskDropout

#: Ways of reducing a token sequence to one vector, accepted by :func:`pool_tokens`.
POOLINGS: tuple[str, ...] = ("mean", "max")

#: Normalisations of a pooled vector, accepted by :func:`readout_norm`.
READOUT_NORMS: tuple[str, ...] = ("batch", "layer")


@dataclass(frozen=True)
class StreamConfig:
    """Hyper-parameters of one :class:`ModalityStream` (the paper gives none of them).

    Attributes
    ----------
    front_end : FrontEndConfig
        The convolutional front end (filters, kernel length, hop, dropout).
    d_model : int
        Token width throughout the stream. Default 64: DEAP has 19,200
        4-s segments in all (32 subjects x 40 trials x 15), too few to feed a
        wide transformer, and the width sets the cost of every layer.
    depth : int
        Encoder layers. Default 3, the fewest that give the student's HDF
        module its three taps at three different depths; the teacher's streams
        share the depth so that its EOG stream and the student are the same
        network.
    n_heads : int
        Attention heads. Default 4 (16 dimensions per head).
    ff_width : int
        Hidden width of each layer's feed-forward block. Default 256, four
        times ``d_model`` as in Vaswani et al. (2017). Its products are the
        best-shaped work in a layer: on a 2-core CPU a 2x block cuts the
        FLOPs of a teacher training step by a fifth but its time by only
        about a tenth, leaving more of the processor idle.
    drop_path : float
        Probability of dropping each residual branch (attention or
        feed-forward) of a segment, stochastic depth (Huang et al., 2016),
        which regularises the layers in place of Vaswani et al.'s
        element-wise residual dropout, as DeiT does (Touvron et al., 2021).
        Default 0.1. Element-wise dropout draws one random number per
        activation, which on a CPU costs more than the layer's matrix
        products; stochastic depth draws one per segment.
    attention_dropout : float
        Dropout on the attention weights. Default 0.0 (as in DeiT): any
        other value sends attention through PyTorch's unfused reference
        path, several times slower on a CPU.
    readout_norm : str
        Normalisation of the pooled vector that a readout reads
        (:func:`readout_norm`): ``"batch"`` (default) or ``"layer"``, kept to
        show what a layer norm there does to training (chapter 3).

    References
    ----------
    .. [1] Vaswani, A., et al. (2017). Attention is all you need. Advances in
       Neural Information Processing Systems 30.
    .. [2] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    .. [3] Huang, G., Sun, Y., Liu, Z., Sedra, D., & Weinberger, K. Q. (2016).
       Deep networks with stochastic depth. ECCV 2016, 646-661.
    .. [4] Touvron, H., et al. (2021). Training data-efficient image
       transformers & distillation through attention. Proceedings of ICML
       2021, 10347-10357.
    """

    front_end: FrontEndConfig = field(default_factory=FrontEndConfig)
    d_model: int = 64
    depth: int = 3
    n_heads: int = 4
    ff_width: int = 256
    drop_path: float = 0.1
    attention_dropout: float = 0.0
    readout_norm: str = "batch"

    def __post_init__(self) -> None:
        check_option("readout_norm", self.readout_norm, READOUT_NORMS)


def sinusoidal_positions(n_tokens: int, d_model: int) -> Tensor:
    """Return the fixed sine/cosine position code of Vaswani et al. (2017), ``(n_tokens, d_model)``.

    A fixed code keeps the stream free of parameters tied to one segment
    length and adds nothing to train.
    """
    position = torch.arange(n_tokens, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    code = torch.zeros(n_tokens, d_model)
    code[:, 0::2] = torch.sin(position * frequency)
    code[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return code


class EncoderLayer(nn.Module):
    """A pre-norm transformer encoder layer: self-attention, then a feed-forward block.

    Attention is ``softmax(q k^T / sqrt(d_k)) v`` over ``n_heads`` heads, as
    Zhang & Lu (2025) write it, computed by
    :func:`torch.nn.functional.scaled_dot_product_attention` from one fused
    query/key/value projection (one matrix product instead of three).
    Normalising *before* each block (pre-norm) rather than after, as in the
    original layer, trains stably without a learning-rate warm-up.

    Parameters
    ----------
    d_model : int
        Token width.
    n_heads : int
        Attention heads; must divide ``d_model``.
    ff_width : int
        Hidden width of the feed-forward block.
    drop_path : float
        Probability of dropping each residual branch for a whole segment.
    attention_dropout : float
        Dropout on the attention weights.

    References
    ----------
    .. [1] Vaswani, A., et al. (2017). Attention is all you need. Advances in
       Neural Information Processing Systems 30.
    .. [2] Xiong, R., et al. (2020). On layer normalization in the transformer
       architecture. Proceedings of ICML 2020, 10524-10533.
    .. [3] Huang, G., Sun, Y., Liu, Z., Sedra, D., & Weinberger, K. Q. (2016).
       Deep networks with stochastic depth. ECCV 2016, 646-661.
    """

    def __init__(
        self, d_model: int, n_heads: int, ff_width: int, drop_path: float, attention_dropout: float
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} does not divide d_model={d_model}")
        self.n_heads = n_heads
        self.attention_dropout = attention_dropout
        self.attention_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attention_out = nn.Linear(d_model, d_model)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff_in = nn.Linear(d_model, ff_width)
        self.ff_out = nn.Linear(ff_width, d_model)
        self.drop_path = SharedMaskDropout(drop_path, shared_dims=(1, 2))

    def forward(self, tokens: Tensor) -> Tensor:
        """Map ``(B, N, d_model)`` tokens to tokens of the same shape."""
        batch, n_tokens, width = tokens.shape
        qkv = self.qkv(self.attention_norm(tokens))
        # (B, N, 3, H, d_k) -> three (B, H, N, d_k) tensors.
        query, key, value = qkv.view(batch, n_tokens, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.attention_dropout if self.training else 0.0
        )
        attended = attended.transpose(1, 2).reshape(batch, n_tokens, width)
        tokens = tokens + self.drop_path(self.attention_out(attended))
        hidden = F.relu(self.ff_in(self.ff_norm(tokens)))
        return tokens + self.drop_path(self.ff_out(hidden))


class ModalityStream(nn.Module):
    """Front end plus transformer encoder for one modality, returning every layer's output.

    Parameters
    ----------
    n_channels : int
        Electrodes of the modality.
    n_times : int
        Samples per segment.
    sfreq : float
        Sampling rate in Hz.
    config : StreamConfig
        Front end and encoder hyper-parameters.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    .. [2] Vaswani, A., et al. (2017). Attention is all you need. Advances in
       Neural Information Processing Systems 30.
    """

    def __init__(self, n_channels: int, n_times: int, sfreq: float, config: StreamConfig) -> None:
        super().__init__()
        self.front_end = ConvFrontEnd(n_channels, n_times, sfreq, config.d_model, config.front_end)
        self.register_buffer(
            "positions",
            sinusoidal_positions(self.front_end.n_tokens, config.d_model),
            persistent=False,
        )
        self.layers = nn.ModuleList(
            EncoderLayer(
                config.d_model,
                config.n_heads,
                config.ff_width,
                config.drop_path,
                config.attention_dropout,
            )
            for _ in range(config.depth)
        )

    def forward(self, signal: Tensor) -> list[Tensor]:
        """Encode ``(B, n_channels, n_times)``; return each layer's ``(B, N, d_model)`` output.

        Element ``i`` of the list is the output of layer ``i + 1``, so a tap
        at "layer 2" reads element 1.
        """
        tokens = self.front_end(signal) + self.positions
        outputs = []
        for layer in self.layers:
            tokens = layer(tokens)
            outputs.append(tokens)
        return outputs


def pool_tokens(tokens: Tensor, pooling: str) -> Tensor:
    """Reduce ``(B, N, d)`` tokens to ``(B, d)`` by ``"mean"`` or ``"max"`` over tokens.

    Raises
    ------
    ValueError
        If ``pooling`` is not one of :data:`POOLINGS`.
    """
    if pooling == "mean":
        return tokens.mean(dim=1)
    if pooling == "max":
        return tokens.amax(dim=1)
    raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")


def readout_norm(kind: str, d_model: int) -> nn.Module:
    """The normalisation of a pooled ``(B, d_model)`` vector: ``"batch"`` or ``"layer"``.

    A batch norm centres and scales each feature over the segments of a
    batch. What tells two segments apart is a small part of a pooled vector:
    the positions, and the level of every log-energy, add the same large
    pattern to every segment. A layer norm, which normalises each segment on
    its own, keeps that pattern, and the readout's output then barely varies
    from segment to segment, so training spends its first epochs growing
    weights before the training accuracy leaves the majority rate (chapter 3
    measures both). The batch norm's running statistics are buffers, which
    the feedback phase's temporary student update clones rather than
    overwrites.

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`READOUT_NORMS`.
    """
    check_option("readout_norm", kind, READOUT_NORMS)
    return nn.BatchNorm1d(d_model) if kind == "batch" else nn.LayerNorm(d_model)


class TapReadout(nn.Module):
    """Pool one encoder layer's tokens, normalise, and project to a fusion module's width.

    The paper's fusion extractors gate their input element-wise with a score
    as wide as their second dense layer (512 for IE, 256 for HE), so each
    tapped feature must have a fixed width of its own. This readout supplies
    it: pooling over tokens, then a normalisation (:func:`readout_norm`),
    then a linear map from ``d_model`` to ``width``.

    Parameters
    ----------
    d_model : int
        Token width of the stream.
    width : int
        Width of the tapped feature.
    pooling : str
        ``"mean"`` or ``"max"`` over tokens (see :func:`pool_tokens`).
    norm : str
        ``"batch"`` or ``"layer"`` (see :func:`readout_norm`).
    """

    def __init__(self, d_model: int, width: int, pooling: str, norm: str = "batch") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")
        self.pooling = pooling
        self.norm = readout_norm(norm, d_model)
        self.project = nn.Linear(d_model, width)

    def forward(self, tokens: Tensor) -> Tensor:
        """Map ``(B, N, d_model)`` tokens to a ``(B, width)`` feature."""
        return self.project(self.norm(pool_tokens(tokens, self.pooling)))


class TappedStream(nn.Module):
    """A :class:`ModalityStream` read out at chosen layers: the features a fusion module takes.

    Parameters
    ----------
    n_channels : int
        Electrodes of the modality.
    n_times : int
        Samples per segment.
    sfreq : float
        Sampling rate in Hz.
    config : StreamConfig
        Front end and encoder hyper-parameters.
    taps : tuple of int
        Encoder layers to read out, counted from 1, shallow to deep. The last
        must be the stream's final layer: a layer above the deepest tap would
        never receive a gradient.
    width : int
        Width of each tapped feature.
    pooling : str
        Token pooling of every readout (see :func:`pool_tokens`).

    Notes
    -----
    The student's ``TappedStream`` and the teacher's EOG ``TappedStream`` are
    built from the same ``StreamConfig``, so the student's ``stream`` can be
    loaded from the teacher's (``load_state_dict``) and their readouts match
    wherever both tap the same layer.
    """

    def __init__(
        self,
        n_channels: int,
        n_times: int,
        sfreq: float,
        config: StreamConfig,
        taps: tuple[int, ...],
        width: int,
        pooling: str,
    ) -> None:
        super().__init__()
        if not taps or len(set(taps)) != len(taps) or list(taps) != sorted(taps):
            raise ValueError(f"taps={taps} must name distinct encoder layers, shallow to deep")
        if taps[0] < 1 or taps[-1] != config.depth:
            raise ValueError(
                f"taps={taps} must lie in 1..{config.depth} and end at the last layer "
                f"({config.depth}); change depth or taps together"
            )
        self.taps = tuple(taps)
        self.stream = ModalityStream(n_channels, n_times, sfreq, config)
        self.readouts = nn.ModuleDict(
            {str(layer): TapReadout(config.d_model, width, pooling, config.readout_norm)
             for layer in self.taps}
        )

    def forward(self, signal: Tensor) -> list[Tensor]:
        """Return one ``(B, width)`` feature per tap, shallow to deep."""
        layers = self.stream(signal)
        return [self.readouts[str(layer)](layers[layer - 1]) for layer in self.taps]
