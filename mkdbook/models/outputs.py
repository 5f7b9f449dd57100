"""The one output type every network in :mod:`mkdbook.models` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutput:
    """Logits plus the named features that distillation needs.

    Attributes
    ----------
    logits : Tensor, shape (batch, n_classes)
        Unnormalised class scores.
    features : Tensor or None, shape (batch, d)
        The fused representation that the feature loss compares: the
        teacher's IMF output (d = 512) or the student's HDF output (d = 256).
        ``None`` for networks without a fusion module.
    taps : dict of str to Tensor
        Further named intermediate features (for example the pooled encoder
        outputs that feed a fusion module, or its gate scores), each of shape
        (batch, d_tap). Documented by each network.
    """

    logits: Tensor
    features: Tensor | None = None
    taps: dict[str, Tensor] = field(default_factory=dict)
