"""Riding out a database or a broker that went away: one exponential backoff
(tenacity's) for every loop of the relay, its dead-letter consumer and its command
lines that must keep trying, each wait logged with what failed. The dispatcher's own
per-message retries are not here: they mirror the RabbitmqSource adapter's exactly
(:mod:`stepline_relay.onemachine.dispatcher`)."""

from __future__ import annotations

import asyncio
import logging

from tenacity import (
    AsyncRetrying,
    AttemptManager,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
    wait_exponential,
)
from tenacity.stop import stop_base

log = logging.getLogger(__name__)


class _stop_when_set(stop_base):
    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.event.is_set()


def retrying(what: str, *errors: type[BaseException], first_s: float, max_s: float,
             attempts: int | None = None, within_s: float | None = None,
             until: asyncio.Event | None = None) -> AsyncRetrying:
    """Try again after ``errors``, waiting ``first_s``, then twice as long each time up
    to ``max_s``; at most ``attempts`` times, or for ``within_s`` seconds, or until
    ``until`` is set (then the last error is raised)."""
    stop: stop_base = stop_never
    if attempts is not None:
        stop = stop_after_attempt(attempts)
    if within_s is not None:
        stop = stop | stop_after_delay(within_s)
    if until is not None:
        stop = stop | _stop_when_set(until)
    return AsyncRetrying(
        retry=retry_if_exception_type(errors), stop=stop, reraise=True,
        wait=wait_exponential(multiplier=first_s, max=max_s, exp_base=2),
        before_sleep=lambda state: log.warning(
            "%s: %s; trying again in %.1fs", what, state.outcome.exception(),
            state.upcoming_sleep),
    )


def started_over(attempt: AttemptManager) -> None:
    """What failed works again (a connection made, a batch done): the next failure
    waits the shortest time again."""
    attempt.retry_state.attempt_number = 1
