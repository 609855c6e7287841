"""The life of a job, in one place: every state change of a job and its processes.

- :mod:`.versions` loads a workflow version's steps once per process (they never change).
- :mod:`.admission` is the one rule that lets a start in or refuses it (a pure function
  over one row): account blocked, workflow blocked or paused, monthly quota; and
  :mod:`.quota` counts the quota at every process creation, never overshooting.
- :mod:`.start` is the one way a job starts — manual starts, Webhook calls, schedule
  ticks, Workflow.call children and service calls alike (:mod:`.services`: a call's
  service, its caller's right to it, its input).
- :mod:`.unit` is the unit of work: one transaction, then the end check of every job it
  touched, so no caller ends a job by hand.
- :mod:`.outcomes` records what became of a delivery (succeeded, failed, retry, waiting,
  cancelled), each through the inbox in one transaction.
- :mod:`.deadletters` is the one writer of dead letters.
- :mod:`.jobs` ends, repairs, cancels and re-delivers.
- :mod:`.triggers` starts the job of one event of a trigger that reaches a source of its
  own (Queue, Email, Sms), and keeps that trigger's health.
"""

from stepline.lifecycle.admission import Gate, Refusal, refusal
from stepline.lifecycle.deadletters import DeadLetter, keep, transport_gave_up
from stepline.lifecycle.jobs import cancel, finish, finish_stale, redeliver
from stepline.lifecycle.outcomes import Delivery, Duplicate, Outcome
from stepline.lifecycle.quota import OverQuota
from stepline.lifecycle.quota import reset as reset_quota
from stepline.lifecycle.services import InvalidInput, ServiceTarget, ServiceUnavailable
from stepline.lifecycle.start import (
    CONFIGURED,
    NotStartable,
    Parent,
    Started,
    Starter,
    StartRefused,
    StepTarget,
    WorkflowTarget,
    admission,
    month_processes,
    start,
)
from stepline.lifecycle.triggers import Health, Seen
from stepline.lifecycle.unit import Unit, work
from stepline.lifecycle.versions import Versions, version_from_rows

__all__ = [
    "CONFIGURED", "DeadLetter", "Delivery", "Duplicate", "Gate", "Health", "InvalidInput",
    "NotStartable", "Outcome", "OverQuota", "Parent", "Refusal", "Seen", "ServiceTarget",
    "ServiceUnavailable", "StartRefused", "Started", "Starter", "StepTarget", "Unit",
    "Versions", "WorkflowTarget", "admission", "cancel", "finish", "finish_stale", "keep",
    "month_processes", "redeliver", "refusal", "reset_quota", "start", "transport_gave_up",
    "version_from_rows", "work",
]
