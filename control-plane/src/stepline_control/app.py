"""The FastAPI application: built from settings, with its engine opened, the functions
catalog seeded and the periodic tasks (retention, the stale-job sweep, the stuck-job
watchdog) started in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from stepline import bounded, lifecycle
from stepline.settings import Settings, sqlalchemy_url
from stepline_control import errors, schedules, sources, ui
from stepline_control.auth import ensure_bootstrap_token
from stepline_control.config import ControlSettings, control_settings
from stepline_control.metrics import Metrics
from stepline_control.middleware import BodyLimit, RequestContext
from stepline_control.routers import (
    accounts,
    billing,
    connections,
    dead_letters,
    functions,
    health,
    hooks,
    jobs,
    me,
    processes,
    projects,
    services,
    steps,
    tokens,
    usage,
    workflows,
)
from stepline_control.services import functions as function_catalog
from stepline_control.services import retention, stuck
from stepline_control.sessions import driver_connection

POOL_SIZE = 10
ROUTERS = (health, me, accounts, tokens, projects, connections, functions, services,
           workflows, steps, jobs, processes, dead_letters, usage, billing, hooks, ui)
# a job whose last process committed but whose end check was lost (a crash in between)
# is ended by this sweep; younger running jobs are left to their own checks
SWEEP_INTERVAL_S = 30.0
SWEEP_MIN_AGE_S = 60.0
# changes after which the schedules must follow the database at once


def make_engine(settings: ControlSettings) -> AsyncEngine:
    timeout_ms = int(settings.statement_timeout_s * 1000)
    return create_async_engine(
        sqlalchemy_url(settings.require_database_url()), pool_size=POOL_SIZE,
        pool_pre_ping=True, connect_args={"options": f"-c statement_timeout={timeout_ms}"},
        # a statement's parameters (payloads, sealed secrets) never reach a log line
        hide_parameters=True,
    )


@asynccontextmanager
async def _retention(app: FastAPI, settings: ControlSettings) -> AsyncIterator[None]:
    if not settings.retention_days:
        yield
        return
    task = asyncio.create_task(retention.run_periodically(
        app.state.sessions, older_than=timedelta(days=settings.retention_days),
        interval_s=settings.retention_interval_s, batch=settings.retention_batch,
        max_batches=settings.retention_max_batches,
        dead_letters_older_than=timedelta(days=settings.dead_letter_retention_days)))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sweep_stale_jobs(app: FastAPI) -> None:
    log = logging.getLogger(__name__)
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        try:
            async with app.state.sessions() as session:
                conn = await driver_connection(session)
                ended = await lifecycle.finish_stale(conn, min_age_s=SWEEP_MIN_AGE_S)
                await session.commit()
            if ended:
                log.warning("ended %d job(s) whose end check had been lost", ended)
        except Exception:
            log.exception("the stale-job sweep failed; trying again later")


@asynccontextmanager
async def _background(app: FastAPI, settings: ControlSettings) -> AsyncIterator[None]:
    """The schedules (local ticker or reconciler), the Queue steps' sources (in a
    cluster), the stale-job sweep and the stuck-job watchdog."""
    schedules.start(app.state, settings)
    sources.start(app.state, settings)
    tasks = [asyncio.create_task(_sweep_stale_jobs(app), name="stepline-sweep")]
    if settings.stuck_after_s:
        tasks.append(asyncio.create_task(stuck.run_periodically(
            app.state.sessions, after_s=settings.stuck_after_s,
            interval_s=settings.stuck_check_interval_s, metrics=app.state.metrics),
            name="stepline-stuck-watchdog"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await schedules.stop(app.state)
        await sources.stop(app.state)


def create_app(settings: Settings) -> FastAPI:
    settings = control_settings(settings)
    # the definition check runs in the bounded workers: they load it before any deadline
    bounded.configure(settings.sandbox_limits)
    bounded.preload("stepline_control.validation")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            async with app.state.sessions() as session:
                await function_catalog.seed(session)
                if settings.bootstrap_token:
                    await ensure_bootstrap_token(session, settings.bootstrap_token)
                await session.commit()
            async with _retention(app, settings), _background(app, settings):
                yield
        finally:
            await engine.dispose()

    app = FastAPI(title="Stepline", version="1", lifespan=lifespan,
                  description="Workflow automation: workflows of steps, run as jobs.")
    app.state.settings = settings
    app.state.metrics = Metrics(ttl_s=settings.metrics_db_ttl_s)
    app.state.versions = lifecycle.Versions()  # the steps of the versions started lately
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router)

    # the last added runs first: the request's context wraps the size limit
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    return app
