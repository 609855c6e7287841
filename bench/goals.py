"""Issue 16's goals table: every goal with this run's figure, whether it is met, the raw
limit of the same run and the figure's ratio to it. Pure: figures in, rows out; the
printing is a few lines at the end.

A rate is compared with the slowest primitive every step needs (on one machine a
single-row commit and a POST to func-python; through RabbitMQ also a confirmed publish
and a consume + ack); a latency with one INSERT + COMMIT for each durable hop it makes
at least; the CPU a step costs with the CPU two cores have for each step at the rate
measured (a figure at that budget means the run was CPU-bound)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CORES = 2
MODES = (("one-machine", "one machine"), ("rabbitmq", "RabbitMQ"))


@dataclass(frozen=True)
class Goal:
    what: str
    figure: float | None
    unit: str  # "/s", "s", "ms", "MB", "x"
    goal: str
    met: bool | None  # None: no goal, or nothing measured
    raw: str = ""  # the raw limit of the same run, in words
    ratio: float | None = None  # figure / raw limit


@dataclass(frozen=True)
class Raw:
    """This run's raw limits."""

    publish: float  # confirmed persistent publishes/s
    consume: float  # consume + ack/s
    commit: float  # single-row INSERT + COMMIT/s
    post: float  # POSTs/s to func-python
    commit_ms: float  # one INSERT + COMMIT, median

    def tightest(self, mode: str) -> tuple[str, float]:
        rates = {"commit": self.commit, "POST": self.post}
        if mode == "rabbitmq":
            rates |= {"publish": self.publish, "consume": self.consume}
        name = min(rates, key=rates.__getitem__)
        return name, rates[name]


def at_least(value: float | None, goal: float) -> bool | None:
    return None if value is None else value >= goal


def at_most(value: float | None, goal: float) -> bool | None:
    return None if value is None else value <= goal


def rate_goals(results: dict[str, Any], raw: Raw) -> list[Goal]:
    out = []
    for (mode, label), goal in zip(MODES, (1000.0, 600.0), strict=True):
        rate = results[mode]["throughput"]["steps_per_s"]
        name, limit = raw.tightest(mode)
        out.append(Goal(f"step executions/s, {label}", rate, "/s", f"≥ {goal:,.0f}",
                        at_least(rate, goal), f"{name} {limit:,.0f}/s", rate / limit))
    return out


def chain_goals(results: dict[str, Any], raw: Raw, steps: int) -> list[Goal]:
    out = []
    for (mode, label), goal in zip(MODES, (0.1, 0.2), strict=True):
        job_s = results[mode]["chain"]["job_s"]["median"]
        limit_s = raw.commit_ms * steps / 1000
        out.append(Goal(f"{steps}-step chain, created -> finished, {label}", job_s, "s",
                        f"≤ {goal} s", at_most(job_s, goal),
                        f"{steps} x commit {raw.commit_ms:.1f} ms", job_s / limit_s))
    return out


def fanout_goals(results: dict[str, Any], raw: Raw, items: int) -> list[Goal]:
    out = []
    for mode, label in MODES:
        job_s = results[mode]["fanout"]["job_s"]
        name, limit = raw.tightest(mode)
        out.append(Goal(f"fan-out of {items:,} into Database.query, {label}", job_s, "s",
                        "≤ 10 s", at_most(job_s, 10.0),
                        f"{items:,} / {name} {limit:,.0f}/s", job_s / (items / limit)))
    return out


def first_step_goals(results: dict[str, Any], raw: Raw) -> list[Goal]:
    out = []
    for (mode, label), goal in zip(MODES, (5.0, 10.0), strict=True):
        first = results[mode]["first_step"]
        for how, ms in (("manual start", first["ms"]["median"]),
                        ("webhook call", first["webhook"]["ms"]["median"])):
            out.append(Goal(f"{how} -> first step starts, p50, {label}", ms, "ms",
                            f"≤ {goal:.0f} ms", at_most(ms, goal),
                            f"commit {raw.commit_ms:.1f} ms", ms / raw.commit_ms))
    return out


def relay_goal(relay_per_s: float, raw: Raw) -> Goal:
    ratio = relay_per_s / raw.publish
    return Goal("relay rows/s against raw confirmed publish", relay_per_s, "/s", "≥ 0.8x",
                ratio >= 0.8, f"publish {raw.publish:,.0f}/s", ratio)


def cpu_goals(results: dict[str, Any]) -> list[Goal]:
    out = []
    for (mode, label), goal in zip(MODES, (2.0, None), strict=True):
        run = results[mode]["throughput"]
        ms = run["cpu_ms_per_step_total"]
        budget = CORES * 1000 / max(run["steps_per_s"], 1e-9)
        out.append(Goal(f"CPU per step, all processes, {label}", ms, "ms",
                        f"≤ {goal:.0f} ms" if goal else "", at_most(ms, goal) if goal else None,
                        f"{CORES} cores at this rate: {budget:.1f} ms", ms / budget))
    return out


def memory_goals(results: dict[str, Any], functions: tuple[str, ...]) -> list[Goal]:
    out = []
    for mode, label in MODES:
        peak = results[mode]["throughput"]["rss_mb_peak"]
        largest = max((v for k, v in peak.items() if k in functions), default=None)
        out.append(Goal(f"function server RSS while serving (largest), {label}", largest,
                        "MB", "≤ 100 MB", at_most(largest, 100.0)))
    run = results["rabbitmq"]["throughput"]
    for name in ("relay", "dispatch"):
        before, after = run["rss_mb_before"].get(name), run["rss_mb_after"].get(name)
        growth = None if before is None or after is None else after - before
        out.append(Goal(f"{name} RSS growth over the throughput run, RabbitMQ", growth, "MB",
                        "flat (bench.soak)", None,
                        f"{before or 0:.0f} -> {after or 0:.0f} MB"))
    return out


def fairness_goals(results: dict[str, Any]) -> list[Goal]:
    out = []
    for mode, label in MODES:
        fair = results[mode]["fanout"]["fairness"]
        worst = fair["worst_s"]
        out.append(Goal(f"account B's small job during A's fan-out (worst of "
                        f"{len(fair['probes'])}), {label}", worst, "s", "≤ 1 s",
                        at_most(worst, 1.0)))
    return out


def goals(results: dict[str, Any], raw: Raw, relay_per_s: float, *, chain_steps: int,
          fanout_items: int, functions: tuple[str, ...]) -> list[Goal]:
    return [*rate_goals(results, raw), *chain_goals(results, raw, chain_steps),
            *fanout_goals(results, raw, fanout_items), *first_step_goals(results, raw),
            relay_goal(relay_per_s, raw), *cpu_goals(results),
            *memory_goals(results, functions), *fairness_goals(results)]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return {"/s": f"{value:,.0f}/s", "s": f"{value:.2f} s", "ms": f"{value:.1f} ms",
            "MB": f"{value:.0f} MB"}.get(unit, f"{value:.2f}")


def cells(goal: Goal) -> tuple[str, ...]:
    met = {True: "met", False: "MISSED", None: ""}[goal.met]
    ratio = "" if goal.ratio is None else (
        f"{goal.ratio:.0%}" if goal.unit == "/s" or "cores" in goal.raw else f"{goal.ratio:.1f}x")
    return goal.what, fmt(goal.figure, goal.unit), goal.goal, met, goal.raw, ratio


def print_goals(rows: list[Goal]) -> None:
    table = [("goal (issue 16)", "figure", "target", "", "raw limit, same run",
              "figure / limit"), *(cells(g) for g in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
