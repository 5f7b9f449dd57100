"""A cell's result read through named attributes (mkdbook.experiments.results.CellResult)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mkdbook.experiments.results import CellResult, StoredScores

SCORES = {"loss": 0.6, "accuracy": 0.7, "f1": 0.65, "balanced_accuracy": 0.66, "auc": 0.72, "n": 120,
          "majority_class": 1, "majority_rate": 0.55, "log_loss_gain": 0.08}
TEACHER = {"loss": 0.5, "accuracy": 0.8, "f1": 0.79, "balanced_accuracy": 0.78, "auc": 0.85}


def _result(extra: dict) -> CellResult:
    record = {"test": SCORES, "val": {**SCORES, "accuracy": 0.75}, "best_epoch": 3,
              "history": [{"epoch": 1, "val_accuracy": 0.6}, {"epoch": 2, "val_accuracy": 0.7}],
              "extra": extra, "seconds": 12.5,
              "trials": {"train": ["s01:01"], "quiz": ["s01:02"], "val": ["s01:03"], "test": ["s01:04"]}}
    # As load_result reads it: through JSON.
    return CellResult(cell=None, folder=Path("."), segments=pd.DataFrame(), record=json.loads(json.dumps(record)))


def test_scores_are_named_attributes():
    result = _result({})
    assert result.test.accuracy == SCORES["accuracy"] and result.test.majority_rate == SCORES["majority_rate"]
    assert result.val.accuracy == 0.75
    assert result.test.as_dict() == SCORES
    assert result.best_epoch == 3 and result.seconds == 12.5
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert list(result.trials) == ["train", "quiz", "val", "test"]


def test_a_network_without_teacher_has_none_of_the_teacher_attributes():
    result = _result({})
    assert result.teacher_before is None and result.teacher_after_test is None
    assert result.teaching_steps is None and result.feedback is None
    assert result.feedback_log.empty


def test_a_distillers_teacher_scores_and_feedback_log():
    log = [{"phase": 1, "update": 1, "step": 10, "grad_norm_via_student": 0.1, "grad_norm_teacher_ce": 1.0}]
    extra = {"teacher_before": TEACHER, "teacher_after": {**TEACHER, "accuracy": 0.82},
             "teacher_before_test": TEACHER, "teacher_after_test": {**TEACHER, "accuracy": 0.81},
             "teaching_steps": 10, "feedback": {"every": 10, "steps": 1}, "feedback_log": log}
    result = _result(extra)
    assert result.teacher_before == StoredScores(**TEACHER)
    assert result.teacher_after.accuracy == 0.82 and result.teacher_after_test.accuracy == 0.81
    assert result.teacher_before.majority_rate is None
    assert result.teacher_before.as_dict() == TEACHER
    assert result.teaching_steps == 10 and result.feedback == {"every": 10, "steps": 1}
    assert result.feedback_log.to_dict("records") == log
    assert result.extra is result.record["extra"]


def test_stored_scores_need_the_four_scores_every_record_holds():
    assert StoredScores.from_record({"loss": 1.0, "accuracy": 0.5, "balanced_accuracy": 0.5, "auc": 0.5}).f1 is None
    with pytest.raises(TypeError, match="loss"):
        StoredScores.from_record({"accuracy": 0.5})
