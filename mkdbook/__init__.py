"""mkdbook: multimodal knowledge distillation for emotion recognition, as a book.

The package is deliberately thin; each module has one job and one chapter
that teaches it:

========================  =====================================================
``mkdbook.data``          DEAP reader, segment cache, simulated cohort, MNE bridge
``mkdbook.splits``        trial-level, k-fold-by-trial, leave-subjects-out, leaky
``mkdbook.models``        teacher, student, fusion modules, reference networks
``mkdbook.train``         a small trainer with checkpoints and learning curves
``mkdbook.losses``        CE, KL, feature MSE and their weighted sum
``mkdbook.distill``       teaching phase and dynamic feedback phase
``mkdbook.experiments``   cached grids of runs and their results table
``mkdbook.stats``         paired tests, corrections, effect sizes, mixed models
``mkdbook.plots``         figures shared by the chapters
========================  =====================================================
"""

__version__ = "0.1.0"
