"""Everything a function author imports from the runtime — the only module a function
folder may import from ``stepline`` (a test checks). See docs/writing-a-function.md.

A function is a func project whose ``function/func.py`` has ``new()`` returning
``FunctionHost(handler)``. The handler names its catalog entry (``spec``: a
:class:`FunctionSpec` whose config model is a :class:`FunctionConfig`, its fields
described with :func:`Field`) and either runs a step (``async def run(self, ctx)``, the
result sent on by the step's ``output``) or fires a trigger (``async def fire(self,
runtime, event)``). It signals a failure with :class:`PermanentError` (the process
fails, its message is kept as a dead letter) or :class:`TemporaryError` (the step's
retry policy applies), and a result that comes later with :class:`Waiting`. Its context
gives it the packet, the typed config, a log, and capabilities: ``await
ctx.connection(name, kind=...)``, ``await ctx.start_child(...)``, ``await
ctx.start_service(...)``, ``await ctx.child_job()``; :class:`Outbound` calls HTTP APIs
behind the platform's address guard; ``ctx.idempotency_key`` is the delivery's stable
key, and :class:`Ledger` writes to a customer's PostgreSQL once per delivery;
:func:`check_url` is the address guard for any other connection (a mailbox). A trigger
that reaches a source of its own (Queue, Email) gets a :class:`TriggerRuntime` that
starts each event's job with its keys, keeps what cannot start one as a dead letter of
its step, and reports how its source is."""

from pydantic import Field

from stepline.bounded import Overrun
from stepline.bounded import cel as bounded_cel
from stepline.bounded import jmespath as bounded_jmespath
from stepline.catalog import (
    CATALOG,
    ConditionConfig,
    CronJobConfig,
    DatabaseQueryConfig,
    EmailConfig,
    FunctionConfig,
    FunctionSpec,
    HttpRequestConfig,
    NextLinkPagination,
    PagePagination,
    QueueConfig,
    RdStationGetLeadsConfig,
    ServiceCallConfig,
    TransformConfig,
    WebhookConfig,
    WorkflowCallConfig,
)
from stepline.conninfo import guarded_conninfo
from stepline.context import (
    ChildJob,
    Context,
    Handler,
    RawHttp,
    StoredConnection,
    Trigger,
    TriggerRuntime,
    TriggerStep,
    Waiting,
)
from stepline.errors import (
    MalformedEvent,
    PermanentError,
    Rejected,
    StepFailure,
    TemporaryError,
    Unauthorized,
)
from stepline.host import FunctionHost
from stepline.ledger import Ledger
from stepline.lifecycle import CONFIGURED, Refusal, Seen, Started, StepTarget, WorkflowTarget
from stepline.lifecycle.start import skipped
from stepline.messages import Route
from stepline.net import AddressRefused, Network, check_url
from stepline.outbound import Credentials, Origin, Outbound, decode, origin_of, own_headers
from stepline.webhooks import parse as parse_webhook_call
from stepline.webhooks import token_check

__all__ = [
    "AddressRefused", "Credentials", "Origin", "guarded_conninfo", "origin_of", "own_headers",
    "Overrun", "bounded_cel", "bounded_jmespath",
    "CATALOG", "CONFIGURED", "ChildJob", "ConditionConfig", "Context", "CronJobConfig",
    "DatabaseQueryConfig", "EmailConfig", "Field", "FunctionConfig", "FunctionHost",
    "FunctionSpec", "Handler", "HttpRequestConfig", "Ledger", "MalformedEvent", "Network",
    "NextLinkPagination", "Outbound", "PagePagination", "PermanentError", "QueueConfig",
    "RawHttp", "RdStationGetLeadsConfig", "Refusal", "Rejected", "Route", "Seen",
    "ServiceCallConfig", "Started", "StepFailure", "StepTarget", "StoredConnection",
    "TemporaryError", "TransformConfig", "Trigger", "TriggerRuntime", "TriggerStep",
    "Unauthorized", "Waiting", "WebhookConfig", "WorkflowCallConfig", "WorkflowTarget",
    "check_url", "decode", "parse_webhook_call", "skipped", "token_check",
]
