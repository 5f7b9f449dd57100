"""Analysis without deep networks: band-power features, information levels, statistics.

:mod:`~mkdbook.analysis.band_power`
    Band-power features and two fast classifiers (chapter 2).
:mod:`~mkdbook.analysis.information_levels`
    How much each modality tells a fixed band-power classifier (chapter 1).
:mod:`~mkdbook.analysis.stats`
    Chance levels, paired tests, corrections, effect sizes (chapter 9).
"""
