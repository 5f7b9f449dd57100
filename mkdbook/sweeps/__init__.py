"""Sweeps of hundreds of runs: small band-power networks, and the gain of distillation along a setting.

Taught in chapter 7 (when distillation helps).

:mod:`~mkdbook.sweeps.band_power_networks`
    Small teacher and student networks on band power, cheap enough to train
    hundreds of times.
:mod:`~mkdbook.sweeps.dose_response`
    The gain of distillation against one setting of the simulated data.
"""
