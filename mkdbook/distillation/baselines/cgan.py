"""The CGAN baseline: generate the teacher's multimodal features from EOG, with a conditional adversary.

Zhang & Lu (2025) compare with a "CGAN" baseline and cite Yan, Zhao & Lu
(2021), who generate *multimodal* (EEG + eye movement) features from eye
movement features alone with a conditional GAN, the eye features being the
condition, and classify the generated features with a classifier trained on
real multimodal features. That is what :class:`CGANTrainer` builds by
default (``condition="eog"``); ``condition="label"`` conditions the
discriminator on the class label instead (Mirza & Osindero's original form),
a variant kept for comparison. :class:`CGANTrainer` says what comes from
which source and what is our decision.

Works cited:

* Z. Zhang and G. Lu, "Multimodal Knowledge Distillation for Emotion Recognition," Brain
  Sciences 15(7):707, 2025.
* X. Yan, L.-M. Zhao and B.-L. Lu, "Simplifying Multimodal Emotion Recognition with Single
  Eye Movement Modality," ACM Multimedia 2021, pp. 1057-1063.
* M. Mirza and S. Osindero, "Conditional Generative Adversarial Nets," arXiv:1411.1784,
  2014.
* J. Hoffman, S. Gupta and T. Darrell, "Learning with Side Information through Modality
  Hallucination," CVPR 2016.
* A. Radford, L. Metz and S. Chintala, "Unsupervised Representation Learning with Deep
  Convolutional Generative Adversarial Networks," ICLR 2016.
* P. Isola, J.-Y. Zhu, T. Zhou and A. A. Efros, "Image-to-Image Translation with
  Conditional Adversarial Networks," CVPR 2017.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mkdbook.core.checks import check_int, check_number, check_option
from mkdbook.core.seeding import seeded
from mkdbook.data.segments import SegmentSet
from mkdbook.distillation.teacher_outputs import teacher_outputs_dir
from mkdbook.distillation.teacher_student import TeacherStudentTrainer, n_classes_of, output_width
from mkdbook.models import build_model
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import Split
from mkdbook.training.runs import MethodResult
from mkdbook.training.trainer import TrainConfig, Trainer, make_adam

__all__ = ["CGANConfig", "CGANStudent", "CGANTrainer", "ConditionalDiscriminator", "run_cgan"]


class CGANStudent(nn.Module):
    """EOG encoder + generator into the teacher's feature space + classifier.

    ``logits = C(G(E(eog)))`` where ``E`` is the student network (its
    ``features``, HDF for the default student), ``G`` a two-layer MLP
    generator and ``C`` a linear classifier of the teacher's feature width.

    Parameters
    ----------
    encoder : nn.Module
        EOG-only network returning features (``ModelOutput.features``).
    in_features, out_features : int
        Encoder feature width and teacher feature width.
    n_classes : int
    hidden : int
        Generator hidden width.
    classifier : nn.Linear, optional
        A classifier to start from (a copy of the teacher's head); a fresh
        one otherwise.
    freeze_classifier : bool
        Keep the classifier fixed (only meaningful with ``classifier``).

    Notes
    -----
    ``forward`` returns ``features`` = the generated (hallucinated) teacher
    features and ``taps={"encoder": E's features}``.
    """

    modalities: ClassVar[tuple[str, ...]] = ("eog",)

    def __init__(self, encoder: nn.Module, in_features: int, out_features: int, n_classes: int = 2,
                 hidden: int = 512, classifier: nn.Linear | None = None,
                 freeze_classifier: bool = True) -> None:
        super().__init__()
        self.modalities = tuple(encoder.modalities)
        self.encoder = encoder
        self.generator = nn.Sequential(
            nn.Linear(in_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out_features),
        )
        if classifier is not None:
            self.classifier = copy.deepcopy(classifier)
        else:
            self.classifier = nn.Linear(out_features, n_classes)
        self.classifier.requires_grad_(not (freeze_classifier and classifier is not None))

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        """Classify ``{"eog": (B, 2, T)}`` through generated teacher features."""
        encoded = self.encoder({k: batch[k] for k in self.modalities}).features
        generated = self.generator(encoded)
        return ModelOutput(logits=self.classifier(generated), features=generated,
                           taps={"encoder": encoded})


class ConditionalDiscriminator(nn.Module):
    """Discriminator ``D(f, c)`` of a conditional GAN on feature vectors.

    As in Mirza & Osindero (2014), the condition ``c`` is concatenated to
    the discriminator's input: the EOG features of the segment (Yan et al.,
    2021) or the one-hot class label. Two hidden layers with LeakyReLU and
    dropout, one logit out (real = teacher features).

    Parameters
    ----------
    in_features : int
        Width of the judged features.
    condition_width : int
        Width of the condition (the EOG feature width, or the number of classes).
    hidden : int
    dropout : float
    """

    def __init__(self, in_features: int, condition_width: int = 2, hidden: int = 256,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features + condition_width, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: Tensor, condition: Tensor) -> Tensor:
        """Real/fake logit, shape (B,), of ``features`` given ``condition`` (B, condition_width)."""
        return self.net(torch.cat([features, condition.to(features.dtype)], dim=1)).squeeze(1)


@dataclass(frozen=True)
class CGANConfig:
    """Settings of the CGAN baseline; every default is our choice (the paper gives none).

    Attributes
    ----------
    condition : {"eog", "label"}, default "eog"
        What the discriminator is conditioned on. ``"eog"``: the segment's
        EOG features (the encoder's output, held constant for the
        discriminator), as Yan et al. (2021) condition on eye movement
        features; ``"label"``: the one-hot class label (Mirza & Osindero,
        2014), the variant.
    adv_weight : float, default 0.1
        Weight of the generator's adversarial loss. Small next to the
        reconstruction term, as in conditional image-to-image GANs where the
        pixel loss dominates and the adversarial term sharpens (pix2pix uses
        1 : 100); here 0.1 : 1.
    rec_weight : float, default 1.0
        Weight of the feature reconstruction ``|G(E(x_eog)) - F_T(x_eeg, x_eog)|``.
    ce_weight : float, default 1.0
        Weight of the cross-entropy of the classifier on generated features.
    reconstruction : {"l1", "l2"}, default "l2"
        L1 or mean squared reconstruction (L2 is the MSE the KD methods use).
    classifier : {"teacher", "train"}, default "teacher"
        ``"teacher"``: a frozen copy of the teacher's classifier head reads
        the generated features, so the generator must produce features the
        teacher would classify correctly (the hallucination view);
        ``"train"``: a fresh classifier trained with the rest.
    generator_hidden, disc_hidden : int, default 512, 256
    disc_lr : float or None, default None
        Discriminator learning rate; the training config's ``lr`` when None.
        Its Adam uses betas (0.5, 0.999) (Radford et al., 2016, DCGAN).
    """

    condition: str = "eog"
    adv_weight: float = 0.1
    rec_weight: float = 1.0
    ce_weight: float = 1.0
    reconstruction: str = "l2"
    classifier: str = "teacher"
    generator_hidden: int = 512
    disc_hidden: int = 256
    disc_lr: float | None = None

    def __post_init__(self) -> None:
        for name in ("adv_weight", "rec_weight", "ce_weight"):
            check_number(name, getattr(self, name), 0.0)
        check_option("condition", self.condition, ("eog", "label"))
        check_option("reconstruction", self.reconstruction, ("l1", "l2"))
        check_option("classifier", self.classifier, ("teacher", "train"))
        check_int("generator_hidden", self.generator_hidden, 1)
        check_int("disc_hidden", self.disc_hidden, 1)
        if self.disc_lr is not None:
            check_number("disc_lr", self.disc_lr, 0.0, strict=True)


#: Options of a CGAN cell besides overrides of the student network.
CGAN_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(CGANConfig))



class CGANTrainer(TeacherStudentTrainer):
    """Conditional-GAN cross-modal transfer: generate the teacher's multimodal features from EOG.

    After Yan, Zhao & Lu (2021), the reference Zhang & Lu (2025) give for
    their CGAN baseline: a generator maps eye (here EOG) features to
    multimodal features, a discriminator conditioned on the eye features
    tells real multimodal features from generated ones, and a classifier
    trained on real multimodal features classifies the generated ones at
    test time, when only the eye signal is recorded.

    * *generator* ``G(E(x_eog))``: the EOG student network ``E`` (its HDF
      features) followed by an MLP (LeakyReLU, as Yan et al.'s fully
      connected generator) into the teacher's feature space (IMF);
    * *discriminator* ``D(f, c)`` with the condition ``c = E(x_eog)``
      (``condition="eog"``, default; held constant for the discriminator,
      which judges the pair and does not train the encoder) or the one-hot
      label (``condition="label"``): real pairs are the frozen teacher's IMF
      features of the EEG+EOG segment with the segment's condition, fake
      pairs the generated features with the same condition;
    * a *reconstruction* term pulling generated features to the teacher's
      features of the same segment, as the hallucination network of Hoffman
      et al. (2016) regresses the depth network's features from RGB;
    * a *classifier* on the generated features: by default a frozen copy of
      the teacher's head, a classifier trained on real multimodal features
      as in Yan et al. (see :class:`CGANConfig`).

    What differs from Yan et al.: their real multimodal features come from
    a bimodal deep autoencoder on hand-made EEG and eye-movement features,
    ours from the trained teacher's IMF; their eye features are hand-made,
    ours are learned by the encoder ``E`` together with the generator; the
    reconstruction term and its weight are our choice.

    Per training batch, one discriminator step then one generator step::

        L_D = BCE(D(F_T, c), 1) + BCE(D(G, c), 0)              (G detached)
        L_G = ce * CE(y, C(G)) + adv * BCE(D(G, c), 1) + rec * |G - F_T|

    At test time only ``C(G(E(x_eog)))`` runs: no EEG, no teacher, no
    discriminator. The discriminator and its optimiser are part of the
    resume state (:attr:`~mkdbook.training.trainer.Trainer.parts`).

    Logged terms: ``loss`` (= ``L_G``), ``ce``, ``adv``, ``rec``,
    ``disc_loss``, ``d_real`` and ``d_fake`` (mean discriminator
    probabilities on real and generated features).
    """

    def __init__(self, model: CGANStudent, teacher: Trainer, config: TrainConfig = TrainConfig(),
                 out_dir: Path | str | None = None, cgan: CGANConfig = CGANConfig(),
                 n_classes: int = 2) -> None:
        self.cgan = cgan
        self.n_classes = n_classes
        width = model.generator[-1].out_features
        condition_width = model.generator[0].in_features if cgan.condition == "eog" else n_classes
        with seeded(config.seed * 7919 + 1):
            self.discriminator = ConditionalDiscriminator(width, condition_width, cgan.disc_hidden)
        super().__init__(model, teacher.model, teacher.scaler, config, out_dir, loss=None)
        self.teacher.requires_grad_(False)
        self.discriminator.to(self.device)
        self.disc_optimizer = make_adam(
            self.discriminator.parameters(), lr=cgan.disc_lr or config.lr, betas=(0.5, 0.999))
        self.add_part("discriminator", self.discriminator)
        self.add_part("disc_optimizer", self.disc_optimizer)

    def identity_extras(self) -> dict:
        """The teacher-student identity and the GAN's settings."""
        return {**super().identity_extras(), "cgan": asdict(self.cgan)}

    def _reconstruction(self, generated: Tensor, target: Tensor) -> Tensor:
        if self.cgan.reconstruction == "l1":
            return F.l1_loss(generated, target)
        return F.mse_loss(generated, target)

    def train_step(self, batch: dict[str, Tensor], y: Tensor) -> dict[str, float]:
        """One discriminator step, then one step of encoder, generator (and classifier)."""
        real = self.teacher_output(batch).features
        self.model.train()
        self.discriminator.train()
        out = self.model({k: batch[k] for k in self.modalities})
        fake = out.features
        if self.cgan.condition == "eog":
            condition = out.taps["encoder"].detach()
        else:
            condition = F.one_hot(y, self.n_classes)

        # Discriminator step on (teacher features, c) vs (generated, c).
        real_logit = self.discriminator(real, condition)
        fake_logit = self.discriminator(fake.detach(), condition)
        disc_loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                     + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
        self.disc_optimizer.zero_grad(set_to_none=True)
        disc_loss.backward()
        self.disc_optimizer.step()

        # Generator (encoder + generator [+ classifier]) step; D is not updated here.
        self.discriminator.requires_grad_(False)
        try:
            gen_logit = self.discriminator(fake, condition)
        finally:
            self.discriminator.requires_grad_(True)
        adv = F.binary_cross_entropy_with_logits(gen_logit, torch.ones_like(gen_logit))
        ce = F.cross_entropy(out.logits, y)
        rec = self._reconstruction(fake, real)
        loss = self.cgan.ce_weight * ce + self.cgan.adv_weight * adv + self.cgan.rec_weight * rec
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {
            "loss": loss.item(), "correct": (out.logits.argmax(1) == y).sum().item(),
            "ce": ce.item(), "adv": adv.item(), "rec": rec.item(), "disc_loss": disc_loss.item(),
            "d_real": torch.sigmoid(real_logit).mean().item(),
            "d_fake": torch.sigmoid(fake_logit).mean().item(),
        }


def run_cgan(cell, data: SegmentSet, split: Split, teacher: Trainer, out_dir: Path) -> MethodResult:
    """The CGAN baseline on one cell (a method's run function; see :class:`CGANTrainer`).

    The cell's options are fields of :class:`CGANConfig` (:data:`CGAN_OPTIONS`);
    any other option overrides the student network's configuration.
    """
    settings = cell.settings
    cgan = CGANConfig(**{k: v for k, v in settings.items() if k in CGAN_OPTIONS})
    overrides = {k: v for k, v in settings.items() if k not in CGAN_OPTIONS}
    n_classes = n_classes_of(teacher.model)
    encoder = build_model("student", n_classes=n_classes, **data.model_inputs(), seed=cell.seed, **overrides)
    in_width = output_width(encoder, "features", data, split.train)
    out_width = output_width(teacher.model, "features", data, split.train)
    head = teacher.model.classifier if cgan.classifier == "teacher" else None
    with seeded(cell.seed * 7919 + 2):
        model = CGANStudent(encoder, in_width, out_width, n_classes, cgan.generator_hidden, head,
                            freeze_classifier=True)
    trainer = CGANTrainer(model, teacher, cell.train, out_dir, cgan, n_classes)
    trainer.teacher_outputs_folder = teacher_outputs_dir(cell)
    result = trainer.fit(data, split, cell.target)
    trainer.save_scaler()
    return MethodResult(result, {"cgan": asdict(cgan), "encoder_width": in_width, "teacher_width": out_width})
