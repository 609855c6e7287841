"""Who spent the CPU: the CPU seconds of every process that serves a step, read with
psutil before and after a measuring window and divided by the step executions in it.

Processes are grouped: each of the platform's children (with its own children), the
PostgreSQL cluster (the whole postmaster tree: backends of the bench's databases, the
server's own processes such as the WAL writer and the checkpointer, and backends of
other databases, which on this shared machine belong to neighbours), RabbitMQ (the
server listening on the AMQP port, with its children) and the bench's own driver. A
group a step does not use (another agent's backends, RabbitMQ on one machine) is still
measured and printed, but left out of the per-step total."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psutil
import psycopg

# groups of the PostgreSQL cluster, by what the process serves
PG_OURS = "postgres: the bench's backends"
PG_SERVER = "postgres: server processes"
PG_OTHERS = "postgres: other databases' backends"
PG_EXITED = "postgres: backends exited in the window"
RABBITMQ = "rabbitmq"
DRIVER = "driver"

Key = tuple[int, float]  # pid and start time: a pid reused in the window is a new process


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds (user + system) used so far, per process, with each one's group."""

    cpu: Mapping[Key, tuple[str, float]] = field(default_factory=dict)


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def reaped_cpu_seconds(proc: psutil.Process) -> float:
    """CPU of the children ``proc`` has waited for: a postmaster's exited backends."""
    times = proc.cpu_times()
    return times.children_user + times.children_system


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (a vanished one is left out)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def take(groups: Mapping[str, Iterable[psutil.Process]], *,
         reaped: Mapping[str, psutil.Process] | None = None) -> Snapshot:
    """Read the CPU of every process named in ``groups`` (group -> its processes), and
    for each of ``reaped`` (group -> a parent) the CPU of the children it waited for."""
    cpu: dict[Key, tuple[str, float]] = {}
    for group, procs in groups.items():
        for proc in procs:
            try:
                cpu[(proc.pid, proc.create_time())] = (group, cpu_seconds(proc))
            except psutil.Error:
                continue
    for group, parent in (reaped or {}).items():
        try:
            cpu[(-parent.pid, parent.create_time())] = (group, reaped_cpu_seconds(parent))
        except psutil.Error:
            continue
    return Snapshot(cpu)


def spent(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds each group spent between two snapshots. A process born in the window
    counts from zero; one that died in it is lost (its parent's reaped times, where
    they are read, stand in for it)."""
    out: dict[str, float] = {}
    for key, (group, used) in after.cpu.items():
        _, earlier = before.cpu.get(key, (group, 0.0))
        out[group] = out.get(group, 0.0) + max(used - earlier, 0.0)
    return out


def per_step_ms(spent_s: Mapping[str, float], steps: int, *,
                counted: Iterable[str]) -> dict[str, object]:
    """Milliseconds of CPU per step execution, each group and the total of the counted
    ones (the rest is printed, not added)."""
    counted = set(counted)
    each = {group: seconds * 1000 / max(steps, 1) for group, seconds in spent_s.items()}
    return {"groups": each,
            "total": sum(v for k, v in each.items() if k in counted),
            "not_counted": sorted(k for k in each if k not in counted)}


def classify_postgres(activity: Iterable[tuple[int, str | None]], ours: set[str],
                      driver_pids: set[int]) -> dict[int, str]:
    """pid -> group, from ``pg_stat_activity``'s (pid, datname): a backend of one of the
    bench's databases is ours, one with no database is the server's own (WAL writer,
    checkpointer, autovacuum launcher, ...), any other belongs to another database."""
    out = {}
    for pid, datname in activity:
        if pid in driver_pids:
            out[pid] = DRIVER
        elif datname is None:
            out[pid] = PG_SERVER
        else:
            out[pid] = PG_OURS if datname in ours else PG_OTHERS
    return out


def amqp_server_pid(port: int) -> int | None:
    """The process listening on the AMQP port: RabbitMQ's beam.smp."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port \
                and conn.pid:
            return conn.pid
    return None


@dataclass
class Meter:
    """The groups of one platform run, read on demand: its children (name -> pid), the
    PostgreSQL cluster behind ``admin_url`` (the bench's databases named in
    ``databases``), RabbitMQ when ``amqp_port`` is given, and the driver (this process
    and the backends whose pids are in ``driver_backends``)."""

    children: Mapping[str, int]
    admin_url: str
    databases: set[str]
    amqp_port: int | None = None
    driver_backends: set[int] = field(default_factory=set)
    _amqp: int | None = field(default=None, init=False, repr=False)

    def snapshot(self) -> Snapshot:
        # the driver first, so that the rest of a snapshot is not counted as its cost
        groups: dict[str, list[psutil.Process]] = {DRIVER: [psutil.Process()]}
        groups |= {name: tree(pid) for name, pid in self.children.items()}
        postmaster, by_pid = self._postgres()
        for proc in tree(postmaster.pid):
            groups.setdefault(by_pid.get(proc.pid, PG_SERVER), []).append(proc)
        if self.amqp_port is not None and (pid := self._amqp_pid()):
            groups[RABBITMQ] = tree(pid)
        return take(groups, reaped={PG_EXITED: postmaster})

    def _amqp_pid(self) -> int | None:
        # looked up once: reading every socket of the machine takes ~70 ms of CPU
        if self._amqp is None:
            self._amqp = amqp_server_pid(self.amqp_port) if self.amqp_port else None
        return self._amqp

    def counted(self) -> set[str]:
        """The groups a step runs through: the neighbours' are left out."""
        out = {*self.children, PG_OURS, PG_SERVER}
        return out | {RABBITMQ} if self.amqp_port is not None else out

    def _postgres(self) -> tuple[psutil.Process, dict[int, str]]:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            own = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            postmaster = psutil.Process(own).parent()  # while this backend lives
            activity = conn.execute("SELECT pid, datname FROM pg_stat_activity").fetchall()
        return postmaster, classify_postgres(activity, self.databases, self.driver_backends)
