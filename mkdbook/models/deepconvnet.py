"""DeepConvNet (Schirrmeister et al., 2017) on EOG: the paper's convolutional baseline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from mkdbook.models.base import Network
from mkdbook.models.outputs import ModelOutput


@dataclass(frozen=True)
class DeepConvNetConfig:
    """Hyper-parameters of :class:`DeepConvNet`; the defaults are the original's.

    Attributes
    ----------
    n_filters : tuple of int
        Filters of the four conv-pool blocks: 25 (temporal and spatial
        convolution of block 1), 50, 100, 200.
    kernel : int
        Temporal kernel of every convolution, in samples. Default 10.
    pool : int
        Max-pooling length, in samples. Default 3.
    pool_stride : int
        Max-pooling stride. Default 3.
    dropout : float
        Dropout before the convolutions of blocks 2-4. Default 0.5.
    batch_norm_momentum : float
        Momentum of the running statistics of batch norm. Default 0.1.

    Notes
    -----
    Adapting to 4-s segments at 128 Hz: the original ran on 250-Hz data;
    we keep kernel, pool and stride in *samples*. Each temporal kernel then
    spans 78 ms instead of 40 ms, and four blocks shrink 512 samples to
    exactly one time step (512 -> 503 -> 167 -> 158 -> 52 -> 43 -> 14 -> 5 -> 1),
    so the final convolution is a dense layer over the 200 features and every
    output sees the whole segment, one prediction per segment as in the
    paper's protocol. Other lengths work as long as one step survives.
    """

    n_filters: tuple[int, int, int, int] = (25, 50, 100, 200)
    kernel: int = 10
    pool: int = 3
    pool_stride: int = 3
    dropout: float = 0.5
    batch_norm_momentum: float = 0.1


class DeepConvNet(Network):
    """Four conv-pool blocks, batch norm, ELU and max pooling, on the EOG channels.

    Block 1 is a temporal convolution ``(1, kernel)`` followed, with no
    non-linearity between, by a spatial convolution ``(n_channels["eog"], 1)``;
    blocks 2-4 are dropout and a temporal convolution. Every block ends in
    batch norm, ELU and max pooling; a final convolution over the remaining
    time steps gives the class scores.

    Parameters
    ----------
    %(network_parameters)s
    config : DeepConvNetConfig
        Filters, kernels, pooling and dropout.

    Notes
    -----
    ``forward`` returns a :class:`~mkdbook.models.outputs.ModelOutput` with
    ``features=None`` and one tap, ``"pooled"``: the flattened output of the
    last block, ``(B, 200 * remaining_steps)`` = ``(B, 200)`` at 512 samples.

    ``sfreq`` is unused: kernels are set in samples (see
    :class:`DeepConvNetConfig`); it is accepted for the common signature.

    References
    ----------
    .. [1] Schirrmeister, R. T., Springenberg, J. T., Fiederer, L. D. J.,
       Glasstetter, M., Eggensperger, K., Tangermann, M., Hutter, F.,
       Burgard, W., & Ball, T. (2017). Deep learning with convolutional
       neural networks for EEG decoding and visualization. Human Brain
       Mapping, 38(11), 5391-5420.
    .. [2] Schirrmeister, R., Gemein, L., Eggensperger, K., Hutter, F., &
       Ball, T. (2017). Deep learning with convolutional neural networks for
       decoding and visualization of EEG pathology. IEEE Signal Processing in
       Medicine and Biology Symposium (SPMB), 1-7.
    .. [3] Zhang, Z., & Lu, G. (2025). Multimodal knowledge distillation for
       emotion recognition. Brain Sciences, 15(7), 707.
    """

    modalities: ClassVar[tuple[str, ...]] = ("eog",)
    config_class: ClassVar[type] = DeepConvNetConfig
    config: DeepConvNetConfig

    def build(self) -> None:
        """Create the four blocks and the final convolution, in that order.

        Raises
        ------
        ValueError
            If ``n_times`` is too short for one time step to survive the blocks.
        """
        cfg, n_times = self.config, self.n_times
        (electrodes,) = self.n_channels.values()
        first, *later = cfg.n_filters
        blocks: list[nn.Module] = [
            nn.Conv2d(1, first, (1, cfg.kernel)),
            # Bias is redundant before batch norm.
            nn.Conv2d(first, first, (electrodes, 1), bias=False),
            *self._norm_and_pool(first),
        ]
        n_steps = self._pooled_length(n_times - cfg.kernel + 1)
        previous = first
        for n_out in later:
            blocks += [
                nn.Dropout(cfg.dropout),
                nn.Conv2d(previous, n_out, (1, cfg.kernel), bias=False),
                *self._norm_and_pool(n_out),
            ]
            n_steps = self._pooled_length(n_steps - cfg.kernel + 1)
            previous = n_out
        if n_steps < 1:
            raise ValueError(
                f"n_times={n_times} samples are too few for four blocks of kernel "
                f"{cfg.kernel} and pooling {cfg.pool}/{cfg.pool_stride}"
            )
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Conv2d(previous, self.n_classes, (1, n_steps))

    def _norm_and_pool(self, n_filters: int) -> list[nn.Module]:
        cfg = self.config
        return [
            nn.BatchNorm2d(n_filters, momentum=cfg.batch_norm_momentum),
            nn.ELU(),
            nn.MaxPool2d((1, cfg.pool), stride=(1, cfg.pool_stride)),
        ]

    def _pooled_length(self, n_steps: int) -> int:
        return (n_steps - self.config.pool) // self.config.pool_stride + 1

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        """Classify a batch ``{"eog": (B, 2, T), ...}``; every other key is ignored."""
        maps = self.blocks(batch[self.modalities[0]].unsqueeze(1))
        logits = self.classifier(maps).flatten(1)
        return ModelOutput(logits=logits, features=None, taps={"pooled": maps.flatten(1)})
