"""Single-modality reference networks of the teacher's own design: EEG-only and EOG-only.

Each is one :class:`~mkdbook.models.encoder.ModalityStream` (the teacher's
front end and encoder) with no fusion: the last layer's tokens are pooled,
normalised and classified. They answer "what does one modality reach with
this architecture on its own?", the yardstick for both the teacher (does
fusing help?) and the student (does distillation help beyond EOG alone?).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor, nn

from mkdbook.models.base import Network
from mkdbook.models.encoder import POOLINGS, ModalityStream, StreamConfig, pool_tokens, readout_norm
from mkdbook.models.outputs import ModelOutput


@dataclass(frozen=True)
class ReferenceConfig:
    """Hyper-parameters of :class:`EEGOnlyNet` and :class:`EOGOnlyNet`.

    Attributes
    ----------
    stream : StreamConfig
        Front end and encoder; defaults to the teacher's.
    pooling : str
        Token pooling of the last layer, ``"mean"`` (default) or ``"max"``.
    head_dropout : float
        Dropout before the classifier. Default 0.25, as in the teacher.
    """

    stream: StreamConfig = field(default_factory=StreamConfig)
    pooling: str = "mean"
    head_dropout: float = 0.25

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r} is not one of {POOLINGS}")


class SingleStreamNet(Network):
    """One stream of the teacher's design, classified from its pooled last layer.

    Subclasses fix the modality through the ``modalities`` class attribute.

    Parameters
    ----------
    %(network_parameters)s
    config : ReferenceConfig
        Stream, pooling and head dropout.

    Notes
    -----
    ``forward`` returns a :class:`~mkdbook.models.outputs.ModelOutput` with
    ``features=None`` (there is no fusion module) and one tap, ``"pooled"``:
    the normalised, pooled last-layer feature that the classifier reads,
    ``(B, d_model)``.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    .. [2] Vaswani, A., et al. (2017). Attention is all you need. Advances in
       Neural Information Processing Systems 30.
    """

    modalities: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[type] = ReferenceConfig
    config: ReferenceConfig

    def build(self) -> None:
        """Create the stream, the readout's norm and the classifier, in that order.

        Raises
        ------
        TypeError
            If the class names not exactly one modality.
        """
        if len(self.modalities) != 1:
            raise TypeError(f"{type(self).__name__} must name exactly one modality")
        (count,) = self.n_channels.values()
        d_model = self.config.stream.d_model
        self.stream = ModalityStream(count, self.n_times, self.sfreq, self.config.stream)
        self.norm = readout_norm(self.config.stream.readout_norm, d_model)
        self.head_dropout = nn.Dropout(self.config.head_dropout)
        self.classifier = nn.Linear(d_model, self.n_classes)

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        """Classify a batch holding this network's one modality; other keys are ignored."""
        (modality,) = self.modalities
        last_layer = self.stream(batch[modality])[-1]
        pooled = self.norm(pool_tokens(last_layer, self.config.pooling))
        logits = self.classifier(self.head_dropout(pooled))
        return ModelOutput(logits=logits, features=None, taps={"pooled": pooled})


class EEGOnlyNet(SingleStreamNet):
    """The teacher's EEG stream alone (see :class:`SingleStreamNet`)."""

    modalities: ClassVar[tuple[str, ...]] = ("eeg",)


class EOGOnlyNet(SingleStreamNet):
    """The teacher's EOG stream alone, the student without HDF (see :class:`SingleStreamNet`)."""

    modalities: ClassVar[tuple[str, ...]] = ("eog",)
