"""The multimodal teacher: an EOG stream and an EEG stream joined by the IMF fusion module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from mkdbook.models.base import Network
from mkdbook.models.encoder import POOLINGS, StreamConfig, TappedStream
from mkdbook.models.fusion import FUSIONS, make_fusion
from mkdbook.models.outputs import ModelOutput


@dataclass(frozen=True)
class TeacherConfig:
    """Hyper-parameters of :class:`Teacher`.

    Attributes
    ----------
    eog, eeg : StreamConfig
        The two streams. Both default to the same :class:`StreamConfig`; the
        EOG one must equal the student's stream for the two to be aligned.
    taps : tuple of int
        Encoder layers whose features feed IMF, shallow to deep: ``X1`` and
        ``X2`` of each modality. Default ``(2, 3)``: the paper takes two
        depths of each stream and says not which; we take the middle and the
        last layer of three, where attention has already mixed the whole
        segment, leaving the shallow layer 1 to the student's HDF.
    pooling : str
        Token pooling of each tap, ``"mean"`` (default: every 250-ms token
        of the 4-s segment counts equally) or ``"max"``.
    fusion : str
        ``"gated"`` (IMF, the paper's) or ``"concat"`` (concatenation and one
        linear layer, for the fusion-versus-concatenation comparison).
    fusion_width : int
        Width of IMF and of its extractors' FC2; each stream's tapped
        feature is half as wide. Default 512, the paper's.
    fusion_hidden : int
        Width of the extractors' FC1. Default 1024, the paper's.
    head_dropout : float
        Dropout on the fused features before the classifier. Default 0.25.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    """

    eog: StreamConfig = field(default_factory=StreamConfig)
    eeg: StreamConfig = field(default_factory=StreamConfig)
    taps: tuple[int, ...] = (2, 3)
    pooling: str = "mean"
    fusion: str = "gated"
    fusion_width: int = 512
    fusion_hidden: int = 1024
    head_dropout: float = 0.25

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion={self.fusion!r} is not one of {FUSIONS}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r} is not one of {POOLINGS}")
        if self.fusion_width % 2:
            raise ValueError(
                f"fusion_width={self.fusion_width} must be even: it is split between two streams"
            )


class Teacher(Network):
    """Dual-stream transformer on EOG and EEG with IMF fusion (Zhang & Lu, 2025, section 3.1).

    Each modality runs its own :class:`~mkdbook.models.encoder.TappedStream`
    (convolutional front end, transformer encoder, readouts at ``taps``).
    At each tap depth ``i`` the EOG and EEG features are concatenated and
    gated by an interaction extractor, and the gated vectors are summed::

        IMF = IE_1(concat(X1_EOG, X1_EEG)) + IE_2(concat(X2_EOG, X2_EEG))

    A dropout and a linear classifier map IMF to the classes.

    Parameters
    ----------
    %(network_parameters)s
    config : TeacherConfig
        Streams, taps, fusion and head.

    Notes
    -----
    ``forward`` returns a :class:`~mkdbook.models.outputs.ModelOutput` with
    ``features`` = IMF, ``(B, fusion_width)`` = ``(B, 512)``, and ``taps``:

    ``"eog_i"``, ``"eeg_i"``
        The tapped, pooled features of each stream at the i-th tap depth,
        ``(B, fusion_width // 2)`` = ``(B, 256)``.
    ``"gate_i"``
        The sigmoid scores of ``IE_i``, in (0, 1), ``(B, fusion_width)`` =
        ``(B, 512)``: a score multiplies the 512-wide concatenation
        element-wise, so it is as wide as FC2 (not FC1's 1024). Absent when
        ``fusion="concat"``.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    .. [2] Vaswani, A., et al. (2017). Attention is all you need. Advances in
       Neural Information Processing Systems 30.
    """

    #: Input keys read by ``forward``, in IMF's concatenation order.
    modalities: ClassVar[tuple[str, ...]] = ("eog", "eeg")
    config_class: ClassVar[type] = TeacherConfig
    config: TeacherConfig

    def build(self) -> None:
        """Create the two tapped streams, the fusion module and the classifier, in that order."""
        stream_configs = {"eog": self.config.eog, "eeg": self.config.eeg}
        self.streams = nn.ModuleDict(
            {
                name: TappedStream(
                    self.n_channels[name],
                    self.n_times,
                    self.sfreq,
                    stream_configs[name],
                    self.config.taps,
                    self.config.fusion_width // 2,
                    self.config.pooling,
                )
                for name in self.modalities
            }
        )
        self.fusion = make_fusion(
            self.config.fusion,
            len(self.config.taps),
            self.config.fusion_width,
            self.config.fusion_hidden,
        )
        self.head_dropout = nn.Dropout(self.config.head_dropout)
        self.classifier = nn.Linear(self.config.fusion_width, self.n_classes)

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        """Classify a batch ``{"eog": (B, 2, T), "eeg": (B, 32, T)}``."""
        tapped = {name: self.streams[name](batch[name]) for name in self.modalities}
        taps = {
            f"{name}_{depth}": feature
            for name in self.modalities
            for depth, feature in enumerate(tapped[name], start=1)
        }
        joint = [torch.cat(per_depth, dim=-1) for per_depth in zip(*tapped.values())]
        fused, scores = self.fusion(joint)
        taps.update({f"gate_{depth}": score for depth, score in enumerate(scores, start=1)})
        logits = self.classifier(self.head_dropout(fused))
        return ModelOutput(logits=logits, features=fused, taps=taps)
