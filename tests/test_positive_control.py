"""The registered positive control: its regime, and predictions judged by their registered criteria."""

from dataclasses import replace

from mkdbook.sweeps import dose_response
from mkdbook.sweeps.band_power_networks import BandPowerNetConfig
from mkdbook.sweeps.positive_control import POSITIVE_CONTROL, assess, control_setting

from test_band_power_networks import synthetic

SMALL = BandPowerNetConfig(steps=60, n_folds=4)
CONTROL = replace(POSITIVE_CONTROL, seeds=(0,))


def _assessed(eog_signal: float):
    data = synthetic(eog_signal=eog_signal, label_noise=1.0)
    setting = control_setting(data, CONTROL)
    assert setting.transfer and setting.n_train == POSITIVE_CONTROL.n_labelled
    return assess(dose_response.sweep([setting], CONTROL.seeds, SMALL), CONTROL)


def test_the_registration_is_the_one_the_book_quotes():
    assert POSITIVE_CONTROL.n_labelled == 4 and POSITIVE_CONTROL.transfer
    assert POSITIVE_CONTROL.seeds == (0, 1, 2)
    assert (POSITIVE_CONTROL.min_oracle_gain, POSITIVE_CONTROL.smallest_effect) == (0.03, 0.02)


def test_a_student_that_can_read_the_target_gains_from_the_oracle_on_the_transfer_set():
    table = _assessed(eog_signal=0.5)
    assert list(table.index) == ["P1", "P2", "P3"]
    assert table.loc["P1", "outcome"] == "confirmed", table
    assert table.loc["P1", "verdict"] == "higher"


def test_a_prediction_fails_where_the_students_input_lacks_the_target():
    # With no target information in the student's input, no teacher can help:
    # the registered oracle prediction must come out as failed, not be forced.
    table = _assessed(eog_signal=0.0)
    assert table.loc["P1", "outcome"] == "failed", table
    assert set(table["outcome"]) <= {"confirmed", "failed"}
