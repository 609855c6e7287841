"""The whole data model of Stepline as SQLAlchemy 2 typed models.

The schema is created only by the Alembic migrations in ``migrations/``; a test asserts
that these models and the migrated database do not differ. The hot paths (inbox, outbox,
process transitions) use the named SQL in ``stepline/sql``; these models serve the
control plane's CRUD and the migrations.
"""

from stepline.models.account import Account, ApiToken
from stepline.models.base import Base
from stepline.models.billing import BillingDaily
from stepline.models.connection import Connection
from stepline.models.function import Function
from stepline.models.job import Job, Process
from stepline.models.messaging import DeadLetter, InboxEntry, OutboxMessage
from stepline.models.project import Project
from stepline.models.service import Service
from stepline.models.trigger import TriggerHealth
from stepline.models.usage import QuotaUsage, UsageDaily
from stepline.models.workflow import Step, Workflow, WorkflowVersion

__all__ = [
    "Account",
    "ApiToken",
    "Base",
    "BillingDaily",
    "Connection",
    "DeadLetter",
    "Function",
    "InboxEntry",
    "Job",
    "OutboxMessage",
    "Process",
    "Project",
    "Service",
    "Step",
    "QuotaUsage",
    "TriggerHealth",
    "UsageDaily",
    "Workflow",
    "WorkflowVersion",
]
