"""The EOG-only student: the teacher's EOG stream with the HDF fusion module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor, nn

from mkdbook.models.base import Network
from mkdbook.models.encoder import POOLINGS, StreamConfig, TappedStream
from mkdbook.models.fusion import FUSIONS, make_fusion
from mkdbook.models.outputs import ModelOutput


@dataclass(frozen=True)
class StudentConfig:
    """Hyper-parameters of :class:`Student`.

    Attributes
    ----------
    stream : StreamConfig
        The EOG stream. It must equal the teacher's ``eog`` stream config
        (both default to ``StreamConfig()``) for the two to be aligned.
    taps : tuple of int
        Encoder layers whose features ``X1, X2, X3`` feed HDF, shallow to
        deep. Default ``(1, 2, 3)``: the paper takes three positions of the
        encoder; with three layers, every layer contributes once.
    pooling : str
        Token pooling of each tap, ``"mean"`` (default) or ``"max"``.
    fusion : str
        ``"gated"`` (HDF, the paper's) or ``"concat"`` (concatenation and one
        linear layer, for the fusion-versus-concatenation comparison).
    fusion_width : int
        Width of HDF, of each tapped feature and of the extractors' FC2.
        Default 256, the paper's.
    fusion_hidden : int
        Width of the extractors' FC1. Default 512, the paper's.
    head_dropout : float
        Dropout on the fused features before the classifier. Default 0.25.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    """

    stream: StreamConfig = field(default_factory=StreamConfig)
    taps: tuple[int, ...] = (1, 2, 3)
    pooling: str = "mean"
    fusion: str = "gated"
    fusion_width: int = 256
    fusion_hidden: int = 512
    head_dropout: float = 0.25

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion={self.fusion!r} is not one of {FUSIONS}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r} is not one of {POOLINGS}")


class Student(Network):
    """Single-stream EOG transformer with HDF fusion (Zhang & Lu, 2025, section 3.2).

    The stream is built exactly like the teacher's EOG stream (same front
    end, same encoder), which is what the paper means by a student
    *structurally aligned* with its teacher: ``student.stream.stream`` and
    ``teacher.streams["eog"].stream`` have identical parameter names and
    shapes. Three tapped features are gated and summed::

        HDF = HE_1(X1) + HE_2(X2) + HE_3(X3)

    A dropout and a linear classifier map HDF to the classes. HDF is 256
    wide, IMF 512: the distillation's feature loss needs a learned
    projection between them, which belongs to the loss, not to this network.

    Parameters
    ----------
    %(network_parameters)s
    config : StudentConfig
        Stream, taps, fusion and head.

    Notes
    -----
    ``forward`` returns a :class:`~mkdbook.models.outputs.ModelOutput` with
    ``features`` = HDF, ``(B, fusion_width)`` = ``(B, 256)``, and ``taps``:

    ``"x1"``, ``"x2"``, ``"x3"``
        The tapped, pooled features, ``(B, 256)`` each.
    ``"gate_1"``, ``"gate_2"``, ``"gate_3"``
        The sigmoid scores of ``HE_k``, in (0, 1), ``(B, 256)`` each. Absent
        when ``fusion="concat"``.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    .. [2] Vaswani, A., et al. (2017). Attention is all you need. Advances in
       Neural Information Processing Systems 30.
    """

    #: Input keys read by ``forward``: EOG only, never EEG.
    modalities: ClassVar[tuple[str, ...]] = ("eog",)
    config_class: ClassVar[type] = StudentConfig
    config: StudentConfig

    def build(self) -> None:
        """Create the tapped stream, the fusion module and the classifier, in that order."""
        self.stream = TappedStream(
            self.n_channels["eog"],
            self.n_times,
            self.sfreq,
            self.config.stream,
            self.config.taps,
            self.config.fusion_width,
            self.config.pooling,
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
        """Classify a batch ``{"eog": (B, 2, T), ...}``; every other key is ignored."""
        tapped = self.stream(batch["eog"])
        fused, scores = self.fusion(tapped)
        taps = {f"x{depth}": feature for depth, feature in enumerate(tapped, start=1)}
        taps.update({f"gate_{depth}": score for depth, score in enumerate(scores, start=1)})
        logits = self.classifier(self.head_dropout(fused))
        return ModelOutput(logits=logits, features=fused, taps=taps)
