"""The methods of the comparison, in one explicit table.

Every method the book compares is one row of :data:`METHODS`: its name, the
function that runs it on a cell, whether it learns from a trained teacher,
its role in the paper's comparison and the works it comes from. Nothing is
registered by importing a module: to add a method, write its run function in
a module of its own and add one row here (the README's *Extending mkdbook*
shows it).

A run function is called as ``run(cell, data, split, teacher, out_dir)``:

``cell`` : :class:`~mkdbook.training.runs.Cell`
    Its ``target``, ``seed``, ``train`` (a :class:`~mkdbook.training.trainer.TrainConfig`
    whose seed is the cell's) and ``settings`` (the method's options).
``data`` : :class:`~mkdbook.data.SegmentSet`
    The segments of the whole cohort.
``split`` : :class:`~mkdbook.splits.Split`
    Train on ``split.train``, select on ``split.val``, and return the
    predictions of ``split.test``, in order.
``teacher`` : :class:`~mkdbook.training.trainer.Trainer` or None
    For methods with ``needs_teacher``: the teacher cell's network with its
    best-validation weights (``teacher.model``) and input standardisation
    (``teacher.scaler``), freshly loaded for this call and so the method's
    to change.
``out_dir`` : Path
    An existing working folder kept across interruptions: give it to the
    trainer as ``out_dir`` and an interrupted run resumes from its last epoch.

It returns a :class:`~mkdbook.training.trainer.TrainResult` or a
:class:`~mkdbook.training.runs.MethodResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from torch import nn

from mkdbook.core.checks import check_option
from mkdbook.data.segments import SegmentSet
from mkdbook.distillation.baselines import run_cgan, run_emotionkd, run_fitnets
from mkdbook.distillation.feedback import FeedbackConfig, run_feedback_distillation
from mkdbook.distillation.teaching import run_distillation
from mkdbook.models import build_model
from mkdbook.splits import Split, with_quiz
from mkdbook.training.runs import Cell, MethodResult
from mkdbook.training.trainer import Trainer, TrainResult

__all__ = [
    "METHODS",
    "ROLES",
    "Method",
    "method_named",
    "method_names",
    "QUIZ_FRACTION",
    "network_builder",
    "train_network",
    "train_network_without_quiz",
]

#: Roles in the paper's comparison, in the order tables list them.
ROLES: tuple[str, ...] = (
    "reference",              # networks that see EEG: what a student could aspire to
    "student baseline",       # EOG-only networks trained on labels alone
    "distillation baseline",  # other ways of teaching an EOG network
    "ablation variant",       # the proposed method with parts removed
    "proposed",               # the paper's method
)

RunFunction = Callable[[Cell, SegmentSet, Split, Trainer | None, Path], TrainResult | MethodResult]
NetworkBuilder = Callable[[Cell, SegmentSet], nn.Module]


@dataclass(frozen=True)
class Method:
    """One row of the method table.

    Attributes
    ----------
    name : str
        The method's name in grids, tables and on the command line.
    role : str
        One of :data:`ROLES`.
    run : callable
        ``run(cell, data, split, teacher, out_dir) -> TrainResult | MethodResult``.
    needs_teacher : bool
        Whether ``run`` receives a trained teacher (otherwise ``None``).
    build : callable or None
        ``build(cell, data) -> nn.Module`` for methods that train one network
        with :class:`~mkdbook.training.trainer.Trainer`; only these can serve as
        teachers, since their trained weights load back into a fresh network.
    teacher : str
        The network method whose trained network is the teacher.
    references : tuple of str
        BibTeX keys (``references.bib``) of the works the method follows.
    description : str
        What the method is, in a few words, for tables.
    """

    name: str
    role: str
    run: RunFunction
    needs_teacher: bool = False
    build: NetworkBuilder | None = None
    teacher: str = "teacher"
    references: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        check_option("role", self.role, ROLES)


def network_builder(model_name: str) -> NetworkBuilder:
    """``build(cell, data)``: the network :func:`~mkdbook.models.build_model` names, seeded by the cell.

    The cell's settings are configuration overrides of the network.
    """
    def build(cell: Cell, data: SegmentSet) -> nn.Module:
        return build_model(model_name, **data.model_inputs(), seed=cell.seed, **cell.settings)

    return build


def train_network(build: NetworkBuilder, cell: Cell, data: SegmentSet, split: Split,
                  teacher: Trainer | None, out_dir: Path) -> TrainResult:
    """The run function of a network trained on labels alone (with :class:`~mkdbook.training.trainer.Trainer`).

    The input standardisation is saved beside the best weights, so that the
    trained network can be loaded back exactly
    (:func:`mkdbook.experiments.grids.trained_network`).
    """
    trainer = Trainer(build(cell, data), cell.train, out_dir)
    result = trainer.fit(data, split, cell.target)
    trainer.save_scaler()
    return result


def train_network_without_quiz(build: NetworkBuilder, cell: Cell, data: SegmentSet, split: Split,
                               teacher: Trainer | None, out_dir: Path) -> MethodResult:
    """Train a network on the split's training trials minus the feedback methods' quiz set.

    The quiz set is the one :class:`~mkdbook.distillation.feedback.FeedbackDistiller`
    carves for the same split (:func:`~mkdbook.splits.with_quiz` with
    :data:`QUIZ_FRACTION`, the same trials for the same split), so a teacher
    trained here has never seen the trials its feedback phase updates it on:
    on the quiz, its own cross-entropy is out-of-sample too. The stored
    result records the quiz trials beside the training trials.
    """
    quizzed = with_quiz(split, data, QUIZ_FRACTION)
    return MethodResult(train_network(build, cell, data, quizzed, teacher, out_dir), split=quizzed)


def _network(name: str, role: str, description: str, references: tuple[str, ...] = (),
             model: str | None = None, without_quiz: bool = False) -> Method:
    build = network_builder(model or name)
    run = train_network_without_quiz if without_quiz else train_network
    return Method(name, role, partial(run, build), build=build, references=references,
                  description=description)


def _distilled(name: str, role: str, run: RunFunction, description: str,
               references: tuple[str, ...], teacher: str = "teacher") -> Method:
    return Method(name, role, run, needs_teacher=True, teacher=teacher, references=references,
                  description=description)


#: Share of each subject's training trials that the feedback methods hold out as
#: their quiz set. It is fixed by their rows (a cell cannot override it), because
#: their teacher, ``teacher-without-quiz``, is pretrained without exactly these trials.
QUIZ_FRACTION: float = FeedbackConfig().quiz_fraction

#: Every method of the comparison, in the order tables list them.
METHODS: tuple[Method, ...] = (
    _network("teacher", "reference", "EEG + EOG transformer streams fused by IMF",
             ("zhang2025multimodal",)),
    _network("teacher-concat", "reference", "the teacher with IMF replaced by concatenation",
             ("zhang2025multimodal",)),
    _network("teacher-without-quiz", "reference",
             "the teacher pretrained without the quiz trials, the teacher of V3 and its control",
             ("zhang2025multimodal",), model="teacher", without_quiz=True),
    _network("eeg", "reference", "the teacher's EEG stream alone", ("zhang2025multimodal",)),
    _network("eog", "student baseline", "the teacher's EOG stream alone", ("zhang2025multimodal",)),
    _network("deepconvnet", "student baseline", "DeepConvNet on EOG", ("schirrmeister2017deep",)),
    _network("student", "student baseline", "the student (EOG stream + HDF) on labels alone",
             ("zhang2025multimodal",)),
    _network("student-concat", "student baseline", "the student with HDF replaced by concatenation",
             ("zhang2025multimodal",)),
    _distilled("fitnets", "distillation baseline", run_fitnets,
               "FitNets: hint training of the student's middle layer, then KD (T = 4)",
               ("romero2015fitnets", "hinton2015distilling")),
    _distilled("emotionkd", "distillation baseline", run_emotionkd,
               "EmotionKD: student fusing three encoder depths, CE + 0.1 KL + feature MSE, "
               "teacher updated by its feedback loss", ("liu2023emotionkd",)),
    _distilled("cgan", "distillation baseline", run_cgan,
               "conditional GAN generating the teacher's multimodal features from EOG, conditioned on EOG",
               ("yan2021simplifying", "mirza2014conditional", "hoffman2016learning")),
    _distilled("hinton", "ablation variant", partial(run_distillation, preset="hinton"),
               "V1: CE + KL on the teacher's logits", ("hinton2015distilling",)),
    _distilled("fusion", "ablation variant", partial(run_distillation, preset="fusion"),
               "V2: CE + KL + fusion-feature MSE", ("zhang2025multimodal",)),
    _distilled("fusion+finetune", "ablation variant",
               partial(run_feedback_distillation, student_term=False, quiz_fraction=QUIZ_FRACTION),
               "control for V3: V2 with the teacher fine-tuned on the quiz set by its own CE only "
               "(V3 without the student term)", ("zhang2025multimodal",), teacher="teacher-without-quiz"),
    _distilled("fusion+feedback", "proposed", partial(run_feedback_distillation, quiz_fraction=QUIZ_FRACTION),
               "V3: V2 with the dynamic feedback phase", ("zhang2025multimodal", "zhou2022bert"),
               teacher="teacher-without-quiz"),
)


def method_named(name: str) -> Method:
    """The row of :data:`METHODS` called ``name``.

    Raises
    ------
    ValueError
        If no method has that name; the message lists the names.
    """
    for method in METHODS:
        if method.name == name:
            return method
    raise ValueError(f"method must be one of {method_names()}, got {name!r}")


def method_names(role: str | None = None) -> tuple[str, ...]:
    """Names of the methods (of one role), in table order."""
    if role is not None:
        check_option("role", role, ROLES)
    return tuple(m.name for m in METHODS if role is None or m.role == role)
