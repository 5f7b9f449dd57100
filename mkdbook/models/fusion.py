"""Fusion modules: the paper's gated extractors (IMF, HDF) and a concatenation baseline.

Zhang & Lu (2025) fuse tapped features with extractors of one form,

    E(x) = sigmoid(FC2(ReLU(FC1(x)))) * x        (element-wise),

called *interaction extractors* (IE) in the teacher's IMF module, whose input
is a concatenation of EOG and EEG features, and *heterogeneous extractors*
(HE) in the student's HDF module, whose input is one tapped feature. The
fused output is the sum of the extractors' outputs.

How wide is ``x``? The score multiplies ``x`` element-wise, so ``x`` must be
as wide as FC2: 512 for IE (FC1/FC2 = 1024/512) and 256 for HE
(FC1/FC2 = 512/256). We keep the formula exactly and make the *inputs* that
wide: each tapped encoder layer is read out at a fixed width
(:class:`~mkdbook.models.encoder.TapReadout`), 256 per stream in the teacher
(so ``concat(X_EOG, X_EEG)`` is 512) and 256 in the student. IMF is then
512 wide and HDF 256, the widths the paper gives (see the book's appendix,
*The method at a glance*), and no extra projection sits inside an extractor.

Every fusion module here maps a list of tapped features to
``(fused, scores)``: the fused vector and the list of gate scores (empty for
the concatenation baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class GatedExtractor(nn.Module):
    """The paper's IE/HE: ``sigmoid(FC2(ReLU(FC1(x)))) * x``.

    Parameters
    ----------
    width : int
        Width of ``x``, which is also FC2's width (the score gates ``x``
        element-wise).
    hidden : int
        FC1's width: 1024 for the teacher's IE, 512 for the student's HE.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    """

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the gated feature and its score in (0, 1), both shaped like ``x``."""
        score = torch.sigmoid(self.fc2(torch.relu(self.fc1(x))))
        return score * x, score


class GatedSumFusion(nn.Module):
    """Sum of gated extractors, one per input: the teacher's IMF and the student's HDF.

    ``IMF = IE_1(concat(X1_EOG, X1_EEG)) + IE_2(concat(X2_EOG, X2_EEG))`` with
    ``width=512, hidden=1024``; ``HDF = HE_1(X1) + HE_2(X2) + HE_3(X3)`` with
    ``width=256, hidden=512``.

    Parameters
    ----------
    n_inputs : int
        Number of extractors (2 for IMF, 3 for HDF).
    width : int
        Width of every input and of the output.
    hidden : int
        Width of each extractor's FC1.

    References
    ----------
    .. [1] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    """

    def __init__(self, n_inputs: int, width: int, hidden: int) -> None:
        super().__init__()
        self.extractors = nn.ModuleList(GatedExtractor(width, hidden) for _ in range(n_inputs))

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Fuse ``n_inputs`` features of shape ``(B, width)``; return ``(fused, scores)``."""
        if len(inputs) != len(self.extractors):
            raise ValueError(f"expected {len(self.extractors)} inputs, got {len(inputs)}")
        gated, scores = zip(*(extract(x) for extract, x in zip(self.extractors, inputs)))
        return torch.stack(gated).sum(dim=0), list(scores)


class ConcatFusion(nn.Module):
    """Baseline fusion: concatenate every input and map it linearly to the fused width.

    A linear layer on a concatenation equals a sum of one linear map per
    input, so this is the gated fusion with the gates removed: the
    comparison isolates what the sigmoid scores contribute.

    Parameters
    ----------
    in_width : int
        Summed width of all inputs.
    width : int
        Output width (512 in place of IMF, 256 in place of HDF).
    """

    def __init__(self, in_width: int, width: int) -> None:
        super().__init__()
        self.project = nn.Linear(in_width, width)

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Return ``(fused, [])`` for features of shape ``(B, w_i)`` summing to ``in_width``."""
        return self.project(torch.cat(list(inputs), dim=-1)), []


#: Fusion kinds accepted by :func:`make_fusion`.
FUSIONS: tuple[str, ...] = ("gated", "concat")


def make_fusion(kind: str, n_inputs: int, width: int, hidden: int) -> nn.Module:
    """Build the fusion of ``n_inputs`` features, each ``width`` wide, into one ``width``-wide vector.

    Parameters
    ----------
    kind : str
        ``"gated"`` (:class:`GatedSumFusion`, the paper's) or ``"concat"``
        (:class:`ConcatFusion`, the baseline).
    n_inputs : int
        Number of input features.
    width : int
        Width of each input and of the output.
    hidden : int
        FC1 width of each gated extractor (unused by ``"concat"``).

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`FUSIONS`.
    """
    if kind == "gated":
        return GatedSumFusion(n_inputs, width, hidden)
    if kind == "concat":
        return ConcatFusion(n_inputs * width, width)
    raise ValueError(f"fusion={kind!r} is not one of {FUSIONS}")
