"""What the schedules (and the Queue steps' RabbitmqSources) need to know besides
:class:`stepline.settings.Settings`: where their objects live, what they point at, and
how often to look again. Read once
from ``STEPLINE_SCHEDULE_*`` at the edge; every field has a working default."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stepline.catalog import CATALOG

NAMESPACE = "stepline"
# the Knative Service of the CronJob function (knative/base/functions/cronjob.yaml)
SINK_SERVICE = "cronjob"
QUEUE_SINK_SERVICE = "queue"
RESYNC_INTERVAL_S = 30.0
REFRESH_INTERVAL_S = 5.0
MISFIRE_GRACE_S = 60.0
SEND_TIMEOUT_S = 10.0
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
# a small non-root image with sh, date and curl: what a CronJob's pod runs to send a tick
TICK_IMAGE = "docker.io/curlimages/curl:8.11.1"
TICK_USER_ID = 65534  # nobody: curlimages/curl names its user, runAsNonRoot needs a number


class ScheduleOptions(BaseSettings):
    """``STEPLINE_SCHEDULE_NAMESPACE``, ``STEPLINE_SCHEDULE_INTERVAL_S`` and the rest."""

    model_config = SettingsConfigDict(env_prefix="STEPLINE_SCHEDULE_", frozen=True,
                                      extra="ignore")

    # pingsource / cronjob backends
    namespace: str = NAMESPACE
    interval_s: float = Field(default=RESYNC_INTERVAL_S, gt=0)
    watch: bool = True
    kube_host: str | None = Field(
        default=None, description="the API server's URL; unset: in-cluster, then kubeconfig")
    sink_service: str = SINK_SERVICE
    function_url: str | None = Field(
        default=None, description="what CronJob pods POST to; unset: the sink Service's "
        "cluster-local address")
    tick_image: str = TICK_IMAGE
    tick_user_id: int = TICK_USER_ID
    # the Knative Service a Queue step's RabbitmqSource sinks into (knative/base/functions)
    queue_sink_service: str = QUEUE_SINK_SERVICE
    # local ticker
    refresh_s: float = Field(default=REFRESH_INTERVAL_S, gt=0)
    misfire_grace_s: float = Field(default=MISFIRE_GRACE_S, ge=0)
    send_timeout_s: float = Field(default=SEND_TIMEOUT_S, gt=0)
    retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S

    @property
    def cluster_function_url(self) -> str:
        return (self.function_url
                or f"http://{self.sink_service}.{self.namespace}.svc.cluster.local")

    def sink_of(self, function: str) -> str:
        """The Knative Service a schedule's ticks go to: the CronJob function's is
        ``sink_service``; another's (Email) is its folder's name."""
        return self.sink_service if function == "CronJob" else CATALOG[function].slug

    def url_of(self, function: str) -> str:
        """What a CronJob's pod POSTs a schedule's ticks to."""
        if function == "CronJob":
            return self.cluster_function_url
        return f"http://{self.sink_of(function)}.{self.namespace}.svc.cluster.local"
