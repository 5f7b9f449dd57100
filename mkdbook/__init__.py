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
2 Splits                      ``mkdbook.splits``, ``mkdbook.features``,
                              ``mkdbook.levels``
3 Teacher                     ``mkdbook.models``: ``frontend``, ``encoder``,
                              ``teacher``, ``reference``, ``deepconvnet``;
                              ``mkdbook.train``, ``mkdbook.batches``,
                              ``mkdbook.metrics``, ``mkdbook.identity``
4 Fusion                      ``mkdbook.models.fusion``,
                              ``mkdbook.models.student``
5 Distillation                ``mkdbook.losses``, ``mkdbook.teacher_outputs``,
                              ``mkdbook.teacher_student``, ``mkdbook.distill``
6 Feedback                    ``mkdbook.feedback``
7 When distillation helps     ``mkdbook.pocket``, ``mkdbook.dose``
8 Ablations and baselines     ``mkdbook.methods``, ``mkdbook.baselines``,
                              ``mkdbook.results``, ``mkdbook.tables``,
                              ``mkdbook.experiments``
9 Significance                ``mkdbook.stats``
Full protocol                 ``mkdbook.executors`` (serial and Dask),
                              ``mkdbook.progress``, ``mkdbook.lease``
Appendix                      *The method at a glance*: the paper's equations
                              and every choice it leaves open, linked to the
                              modules above
support                       ``mkdbook.book`` (chapter support),
                              ``mkdbook.plots``, ``mkdbook.profile``,
                              ``mkdbook.paths``, ``mkdbook.checks``,
                              ``mkdbook.seeding``, ``mkdbook.docs``,
                              ``mkdbook.atomic``, ``mkdbook.cli`` (command line)
============================  =================================================
"""

__version__ = "0.1.0"
