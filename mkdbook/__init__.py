"""mkdbook: multimodal knowledge distillation for emotion recognition, as a book.

The package is deliberately thin: each module has one job, and each chapter
of the book teaches a few of them.

============================  =================================================
chapter                       modules
============================  =================================================
1 Data                        ``mkdbook.data``: ``layout``, ``reader``,
                              ``safe_pickle``, ``segments``, ``fingerprint``,
                              ``cache``, ``install``, ``simulate``,
                              ``mne_bridge``
2 Splits                      ``mkdbook.splits``, ``mkdbook.analysis.band_power``,
                              ``mkdbook.analysis.information_levels``
3 Teacher                     ``mkdbook.models``: ``frontend``, ``encoder``,
                              ``teacher``, ``reference``, ``deepconvnet``;
                              ``mkdbook.training.trainer``, ``mkdbook.training.batches``,
                              ``mkdbook.training.metrics``, ``mkdbook.training.run_identity``
4 Fusion                      ``mkdbook.models.fusion``,
                              ``mkdbook.models.student``
5 Distillation                ``mkdbook.distillation.losses``, ``mkdbook.distillation.teacher_outputs``,
                              ``mkdbook.distillation.teacher_student``, ``mkdbook.distillation.teaching``
6 Feedback                    ``mkdbook.distillation.feedback``
7 When distillation helps     ``mkdbook.sweeps.band_power_networks``, ``mkdbook.sweeps.dose_response``
8 Ablations and baselines     ``mkdbook.experiments.methods``, ``mkdbook.distillation.baselines``,
                              ``mkdbook.experiments.results``, ``mkdbook.experiments.tables``,
                              ``mkdbook.experiments.grids``
9 Significance                ``mkdbook.analysis.stats``
Full protocol                 ``mkdbook.experiments.executors`` (serial and Dask),
                              ``mkdbook.experiments.progress``, ``mkdbook.experiments.leases``
Appendix                      *The method at a glance*: the paper's equations
                              and every choice it leaves open, linked to the
                              modules above
support                       ``mkdbook.book.chapter`` (chapter support),
                              ``mkdbook.book.plots``, ``mkdbook.core.profiles``,
                              ``mkdbook.core.paths``, ``mkdbook.core.checks``,
                              ``mkdbook.core.seeding``, ``mkdbook.core.docstrings``,
                              ``mkdbook.core.atomic``, ``mkdbook.cli`` (command line)
============================  =================================================
"""

__version__ = "0.1.0"
