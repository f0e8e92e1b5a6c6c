"""alphazoo.training: train now or on a schedule, within a time quota, in backtests and live.

LEAN's training workflow for any Python program:

- :class:`Trainer` -- ``train(fn)`` now, ``train(date_rule, time_rule, fn)`` on a schedule;
  a simulated clock (``mode="backtest"``, :meth:`Trainer.advance`) or the wall clock
  (``mode="live"``, a scheduler thread and a training worker); the model in service,
  :attr:`Trainer.model` (a :class:`ServedModel`), swapped atomically; :meth:`Trainer.follow`
  / :meth:`ServedModel.follow` keep it on the version a registry alias points to
  (:class:`AliasFollower`).
- :class:`DateRules`, :class:`TimeRules`, :class:`DayOfWeek` -- LEAN's schedule rules, with
  trading days and session hours from an exchange calendar.
- :class:`LeakyBucket` -- LEAN's training-time quota; :class:`TrainingQuotaExceeded` when it
  runs dry.
- :func:`walk_forward` -- rolling or expanding retraining with stitched out-of-sample
  predictions; :func:`map_train` / :class:`TrainJob` -- many trainings on any executor.
- :mod:`~alphazoo.training.model_versions` -- ``save_as`` series ``name/v000001`` + ``latest.json``.

Importing this package imports no ML framework (pandas only when walk-forward runs).
"""

from __future__ import annotations

from .bucket import LeakyBucket
from .fanout import JobError, JobResult, TrainJob, current_zoo, map_train, train_zoo_model
from .follow import AliasFollower, FollowEvent, ModelRejectedError
from .model_versions import (
    latest_version,
    load_latest,
    next_version,
    save_version,
    version_key,
    versions,
)
from .quota import TrainingProcessError, TrainingQuotaExceeded
from .records import Schedule, Trained, TrainingRecord
from .rules import DateRule, DateRules, DayOfWeek, TimeRule, TimeRules, fire_times
from .served import ModelNotReadyError, ModelVersion, ServedModel
from .trainer import Trainer
from .walkforward import Fold, WalkForwardResult, walk_forward

__all__ = [
    "Trainer",
    "Trained",
    "TrainingRecord",
    "Schedule",
    "ServedModel",
    "ModelVersion",
    "ModelNotReadyError",
    "AliasFollower",
    "FollowEvent",
    "ModelRejectedError",
    "DateRules",
    "TimeRules",
    "DayOfWeek",
    "DateRule",
    "TimeRule",
    "fire_times",
    "LeakyBucket",
    "TrainingQuotaExceeded",
    "TrainingProcessError",
    "walk_forward",
    "WalkForwardResult",
    "Fold",
    "map_train",
    "TrainJob",
    "JobResult",
    "JobError",
    "train_zoo_model",
    "current_zoo",
    "version_key",
    "versions",
    "latest_version",
    "next_version",
    "save_version",
    "load_latest",
]
