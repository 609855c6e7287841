"""The functions catalog: each built-in function's name, folder slug, kind, visibility
and the JSON Schema of its ``config``. The control plane validates definitions against
it; each function folder serves the handler of one entry.

Templates: string values in a config may hold ``{{ ... }}`` expressions over the packet
(``payload``, ``job``, ``step``...), rendered by the runtime before the handler runs —
except in a field marked :data:`NOT_TEMPLATED` (SQL text, which takes values only as
bound parameters): the control plane refuses a template there, the runtime never
renders one."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# the JSON Schema keyword of a field used as written: both the control plane and the
# runtime read it from the schema, so they cannot disagree on which fields it marks
TEMPLATED_KEYWORD = "x-templated"
NOT_TEMPLATED = {TEMPLATED_KEYWORD: False}


def verbatim_fields(schema: dict[str, Any]) -> frozenset[str]:
    """The top-level config fields a schema marks as never templated."""
    return frozenset(
        name
        for name, node in schema.get("properties", {}).items()
        if node.get(TEMPLATED_KEYWORD) is False
    )


# an HTTP header's name: an RFC 9110 token (less the backquote, which no header uses and
# which would break the catalog's Markdown)
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_|~-]+$"


class FunctionConfig(BaseModel):
    """The base of every config model: an unknown field is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


_Config = FunctionConfig


class ManualConfig(_Config):
    """Started by a person (UI or API) with the payload they give."""

    form: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the payload: the UI renders it as a form "
        "and a start whose payload fails it is refused (422 naming the field)")


class CronJobConfig(_Config):
    schedule: str = Field(description="5-field cron expression", examples=["*/5 * * * *"])
    timezone: str = Field(default="UTC", description="IANA time zone of the schedule")
    payload: Any = Field(default_factory=dict, description="the job's payload at each tick")


class WebhookConfig(_Config):
    payload_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the posted data must satisfy"
    )
    token_sha256: str | None = Field(
        default=None,
        pattern="^[0-9a-fA-F]{64}$",
        description="SHA-256 (hex) of the bearer token a direct call to the Webhook function "
        "must carry; calls through the control plane use an API token instead",
    )


class QueueConfig(_Config):
    """Every message on a RabbitMQ queue starts one job (the queue must exist: it is
    checked, never declared or changed)."""

    connection: str = Field(min_length=1, description="an `amqp` connection's name")
    queue: str = Field(min_length=1, max_length=255, description="the queue to consume")
    format: Literal["json", "text"] = Field(
        default="json", description='json: the body is the payload; text: {"text": body}')
    prefetch: int = Field(default=10, ge=1, le=1000,
                          description="messages in hand at once, unacknowledged")


class EmailConfig(_Config):
    """Every new message in an IMAP mailbox starts one job."""

    connection: str = Field(min_length=1, description="an `imap` connection's name")
    mailbox: str = Field(default="INBOX", min_length=1, max_length=1000)
    search: str = Field(default="UNSEEN", min_length=1, max_length=1000,
                        description="IMAP SEARCH criteria of the messages to take")
    every: float = Field(default=60, ge=5, le=86_400,
                         description="seconds between polls (a cluster polls at most "
                         "once a minute)")
    mark_seen: bool = Field(default=True, description="set \\Seen once the job started")
    attachments: Literal["metadata", "none"] = "metadata"


class SmsConfig(_Config):
    """Every inbound SMS the provider posts to the step's URL starts one job."""

    connection: str = Field(min_length=1, description="a `twilio` connection's name: its "
                            "auth token checks each request's signature")


class PagePagination(_Config):
    """Numbered pages: ``param`` counts up from ``start`` until a page has no items."""

    mode: Literal["page"] = "page"
    param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = Field(default=None, ge=1)
    max_pages: int = Field(default=100, ge=1, le=10_000)


class NextLinkPagination(_Config):
    """Each response names the next page's URL at ``next_path`` (JMESPath); none ends."""

    mode: Literal["next_link"]
    next_path: str
    max_pages: int = Field(default=100, ge=1, le=10_000)


class HttpRequestConfig(_Config):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(description="absolute URL, or a path under the connection's base_url")
    connection: str | None = Field(default=None, description="an `http` connection's name")
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = Field(default=None, description="JSON body")
    items_path: str | None = Field(
        default=None, description="JMESPath that extracts the list of items from the response"
    )
    pagination: PagePagination | NextLinkPagination | None = Field(
        default=None, description="fetch every page and return all items (needs items_path)"
    )
    timeout_s: float = Field(default=30.0, gt=0, le=300)
    idempotency_header: str | None = Field(
        default="Idempotency-Key",
        pattern=HEADER_NAME,
        description="the header that carries the delivery's stable key on every request "
        "but GET and HEAD (the same on every redelivery and retry of this step for this "
        "message; `<key>:<n>` for the n-th page); null sends none",
    )


class RdStationGetLeadsConfig(_Config):
    connection: str = Field(description="an `http` connection holding the Bearer token")
    segmentation_id: int | str
    base: str | None = Field(
        default=None,
        description="API base URL; by default the connection's base_url, else "
        "https://api.rd.services. The token goes only to the connection's origin",
    )
    page_size: int = Field(default=125, ge=1, le=125)


class DatabaseQueryConfig(_Config):
    sql: str = Field(
        min_length=1,
        description="SQL with :named parameters bound from the payload; never templated",
        json_schema_extra=NOT_TEMPLATED,
    )
    connection: str | None = Field(
        default=None,
        description="a `postgres` connection's name; none means the platform's own database "
        "(operators only), in the same transaction as the outbox",
    )
    result: Literal["rows", "rowcount", "payload"] = Field(
        default="rows",
        description="what the step outputs: the rows read, the row count, or the input payload",
    )
    ledger: bool = Field(
        default=True,
        description="a write commits with a row in the connection's `stepline.effect_ledger` "
        "table, so a redelivered step skips it and outputs what it recorded: exactly once. "
        "false: at least once (a read-only user, a server that is not PostgreSQL)",
    )


class ConditionBranch(_Config):
    when: str = Field(description="CEL expression over `payload`")
    next: str


class ConditionConfig(_Config):
    branches: list[ConditionBranch] = Field(min_length=1)
    default: str | None = None


class TransformConfig(_Config):
    expression: str = Field(description="JMESPath expression over the payload")


class WorkflowCallConfig(_Config):
    workflow_id: str
    payload: Any = Field(default=None, description="the child's payload; default: this payload")


class ServiceCallConfig(_Config):
    """The config of a step that names a published service (``Acme.enrichLead``)."""

    input: Any = Field(default=None, description="the call's input, checked against the "
                       "service's input schema when it is called; default: this payload")


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    slug: str
    kind: Literal["trigger", "action"]
    visibility: Literal["public", "private"]
    description: str
    config: type[BaseModel]

    @property
    def config_schema(self) -> dict[str, Any]:
        return self.config.model_json_schema()

    @cached_property
    def verbatim(self) -> frozenset[str]:
        """The config fields the runtime leaves as they are (see NOT_TEMPLATED)."""
        return verbatim_fields(self.config_schema)


CATALOG: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec(
            "Manual",
            "manual",
            "trigger",
            "public",
            "A job started by a person from the UI or the API.",
            ManualConfig,
        ),
        FunctionSpec(
            "CronJob",
            "cronjob",
            "trigger",
            "public",
            "Starts a job on a cron schedule.",
            CronJobConfig,
        ),
        FunctionSpec(
            "Webhook",
            "webhook",
            "trigger",
            "public",
            "Starts a job from an HTTP call to the step's URL.",
            WebhookConfig,
        ),
        FunctionSpec(
            "Queue",
            "queue",
            "trigger",
            "public",
            "Starts a job for every message on a RabbitMQ queue.",
            QueueConfig,
        ),
        FunctionSpec(
            "Email",
            "email",
            "trigger",
            "public",
            "Starts a job for every new message in an IMAP mailbox.",
            EmailConfig,
        ),
        FunctionSpec(
            "Sms",
            "sms",
            "trigger",
            "public",
            "Starts a job for every inbound SMS its provider posts to the step's URL.",
            SmsConfig,
        ),
        FunctionSpec(
            "Http.request",
            "http-request",
            "action",
            "public",
            "Calls an HTTP API.",
            HttpRequestConfig,
        ),
        FunctionSpec(
            "RdStation.getLeads",
            "rdstation-getleads",
            "action",
            "public",
            "Pages through an RD Station Marketing segmentation's contacts.",
            RdStationGetLeadsConfig,
        ),
        FunctionSpec(
            "Database.query",
            "database-query",
            "action",
            "public",
            "Runs parameterised SQL on a stored connection.",
            DatabaseQueryConfig,
        ),
        FunctionSpec(
            "Condition",
            "condition",
            "action",
            "public",
            "Picks the next step with the first CEL expression that holds.",
            ConditionConfig,
        ),
        FunctionSpec(
            "Transform",
            "transform",
            "action",
            "public",
            "Reshapes the payload with a JMESPath expression.",
            TransformConfig,
        ),
        FunctionSpec(
            "Workflow.call",
            "workflow-call",
            "action",
            "public",
            "Runs another workflow as a step and continues with its result.",
            WorkflowCallConfig,
        ),
        # not named by steps: a step names a published service, and the relay routes
        # every service's messages here (the service's catalog row says so)
        FunctionSpec(
            "Service.call",
            "service-call",
            "action",
            "private",
            "Serves every published service: calls it as a child job in its publisher's "
            "account and continues with its result.",
            ServiceCallConfig,
        ),
    )
}

# Triggers the control plane runs itself: they need no function server (an Sms step's
# URL is the control plane's POST /v1/hooks/{step_id}).
IN_PROCESS = frozenset({"Manual", "Sms"})
# The function that serves every published service (a service's catalog endpoint)
SERVICE_CALL = "Service.call"
