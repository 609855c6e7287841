"""What a tenant writes cannot stall the platform: templates, CEL and JMESPath that run
away (in time, memory or result size) fail their step with a clear error, in a worker
that is killed and replaced; checking a template never evaluates it; a normal
evaluation goes on while a runaway one runs."""

from __future__ import annotations

import asyncio
import os

import pytest

from stepline import bounded, templates
from stepline.bounded import Limits, Overrun, Pool, evaluators
from stepline.errors import PermanentError

CONTEXT = {"payload": {"id": 7, "name": "Ana", "tags": ["a", "b"], "items": list(range(300))}}
# each would take minutes, or gigabytes, if evaluated
BOMBS = [
    "{{ 9 ** (9 ** 9) }}",
    "{{ 'a' * 10**10 }}",
    "{{ [1] * 10**10 }}",
    "x {{ 'x'|center(1000000000) }}",
    "{{ '%01000000000d' % 1 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ range(100000)|join('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') }}",
]
LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
QUADRATIC_CEL = "size(payload.items.map(x, payload.items.map(y, y)))"
DOUBLING_JMESPATH = "|".join(["[@, @][]"] * 40)
SHARED_JMESPATH = "|".join(["[@, @]"] * 40)


class TestTemplateCheck:
    @pytest.mark.parametrize("bomb", BOMBS)
    def test_checking_a_template_never_evaluates_it(self, bomb: str) -> None:
        templates.check({"url": bomb})  # parses: the evaluation is the run's business

    @pytest.mark.parametrize("text", ["x {{ 'y'|center(7) }}", "{{ 'y'|center(7) }} x",
                                      "{% if true %}{{ 'y'|center(7) }}{% endif %}"])
    def test_no_filter_runs_while_a_template_is_checked(
            self, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
        # Jinja's compiler folds the constant children of an output unless told not to:
        # `x {{ 'x'|center(10**9) }}` once took the control plane 24 s and 1 GB to validate.
        calls = []
        center = templates._env().filters["center"]
        monkeypatch.setitem(templates._env().filters, "center",
                            lambda *a, **k: calls.append(a) or center(*a, **k))
        templates.compiled.cache_clear()
        templates.check({"url": text})
        assert calls == []

    def test_a_template_nested_too_deeply_is_a_problem_not_a_crash(self) -> None:
        with pytest.raises(templates.TemplateError, match="nests too deeply") as caught:
            templates.check({"a": ["{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"]})
        assert caught.value.path == "config.a[0]"


class TestTemplateRender:
    @pytest.mark.parametrize("bomb", BOMBS)
    async def test_a_runaway_template_fails_its_step_permanently(self, bomb: str) -> None:
        with pytest.raises(PermanentError, match=r"config\.url|templates of config") as caught:
            await templates.render({"url": bomb}, CONTEXT)
        assert any(word in str(caught.value) for word in (
            "exceeded", "larger than", "more than", "refused")), caught.value

    async def test_the_messages_say_which_limit(self) -> None:
        with pytest.raises(Overrun, match=r"templates of config exceeded 1 s"):
            await templates.render({"url": LOOP}, CONTEXT)
        with pytest.raises(PermanentError, match=r"template result larger than 1048576 bytes"):
            await templates.render({"url": BOMBS[-1]}, CONTEXT)
        with pytest.raises(Overrun, match=r"memory limit of 256 MiB"):
            await templates.render({"url": "{{ 'x'|center(1000000000) }}"}, CONTEXT)

    async def test_bounded_shapes_render_in_process_the_rest_in_a_worker(self) -> None:
        fast = ["{{ payload.id }}", "id={{ payload.id }}", "{{ payload.tags|join(',') }}",
                "{{ payload.name|lower ~ '-' ~ payload.id }}", "{{ payload | tojson }}"]
        slow = [LOOP, "{{ payload.tags|map('upper')|list }}", "{{ range(3)|list }}",
                "{{ payload.name|tojson|tojson }}", "{{ payload.name.upper() }}"]
        assert all(templates.compiled(t).fast for t in fast)
        assert not any(templates.compiled(t).fast for t in slow)
        config = {"a": fast[2], "b": slow[1], "c": ["{{ payload.id * 2 }}", 3]}
        assert await templates.render(config, CONTEXT) == {"a": "a,b", "b": ["A", "B"],
                                                           "c": [14, 3]}

    async def test_the_sandbox_is_immutable(self) -> None:
        with pytest.raises(PermanentError, match="config.x"):
            await templates.render({"x": "{{ payload.tags.append(1) }}"}, CONTEXT)


class TestExpressions:
    async def test_a_runaway_cel_expression_fails_within_the_limit(self) -> None:
        with pytest.raises(Overrun, match=r"branches\[0\]\.when exceeded 1 s"):
            await bounded.cel(QUADRATIC_CEL, CONTEXT, what="branches[0].when")
        assert await bounded.cel("payload.id == 7", CONTEXT, what="when") is True

    async def test_a_doubling_jmespath_expression_fails_within_the_limit(self) -> None:
        with pytest.raises(Overrun, match=r"config\.expression exceeded 1 s"):
            await bounded.jmespath(DOUBLING_JMESPATH, [1], what="config.expression")

    async def test_a_result_that_would_be_written_huge_is_refused(self) -> None:
        # 2**40 leaves sharing one object: tiny in memory, a terabyte as JSON
        with pytest.raises(PermanentError, match="larger than|exceeded"):
            await bounded.jmespath(SHARED_JMESPATH, 1, what="config.expression")

    def test_jmespath_bounded_by_its_shape_runs_in_process(self) -> None:
        fast = ["@", "items[*].id", "items[?x > `1`] | [0]", "length(tags)", "a[].b[1:3]",
                "sort_by(items, &name)"]
        slow = ["[@, @]", "{a: a}", "join(',', tags)", "to_string(@)", DOUBLING_JMESPATH,
                "a" + ".a" * 600]
        assert all(evaluators.jmespath_fast(e) is not None for e in fast)
        assert not any(evaluators.jmespath_fast(e) is not None for e in slow)

    async def test_errors_of_the_expression_are_its_own(self) -> None:
        with pytest.raises(PermanentError, match="does not compile"):
            await bounded.cel("payload.id >", CONTEXT, what="when")
        assert await bounded.jmespath("tags[1]", CONTEXT["payload"], what="e") == "b"
        with pytest.raises(PermanentError, match="does not compile"):
            await bounded.jmespath("tags[", CONTEXT["payload"], what="e")
        with pytest.raises(PermanentError, match="failed"):
            await bounded.jmespath("length(`1`)", CONTEXT["payload"], what="e")


    async def test_data_too_deep_to_send_is_a_permanent_error(self) -> None:
        deep: list = []
        for _ in range(5000):
            deep = [deep]
        with pytest.raises(PermanentError, match="nests too deeply"):
            await bounded.cel("true", {"payload": deep}, what="branches[0].when")


class TestPool:
    async def test_a_normal_evaluation_completes_while_a_runaway_one_runs(self) -> None:
        pool = Pool(Limits(timeout_s=120.0, workers=2))
        try:
            runaway = asyncio.ensure_future(
                pool.run(evaluators.cel_value, QUADRATIC_CEL, CONTEXT, what="when"))
            for _ in range(3):
                value = await pool.run(evaluators.cel_value, "payload.id == 7", CONTEXT,
                                       what="when")
                assert value is True
            assert not runaway.done()  # still running, and it held nobody up
            runaway.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runaway
        finally:
            pool.close()

    async def test_a_killed_worker_is_replaced(self) -> None:
        pool = Pool(Limits(timeout_s=1.0, workers=1))
        try:
            with pytest.raises(Overrun):
                await pool.run(evaluators.cel_value, QUADRATIC_CEL, CONTEXT, what="when")
            assert await pool.run(evaluators.jmespath_value, "id", CONTEXT["payload"],
                                  what="e") == 7
        finally:
            pool.close()

    async def test_a_worker_sees_none_of_the_parents_secrets(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("STEPLINE_SECRET_KEY", "not for tenants")
        pool = Pool(Limits(workers=1))
        try:
            assert await pool.run(os.getenv, "STEPLINE_SECRET_KEY", what="env") is None
            assert await pool.run(os.getenv, "PATH", what="env") == os.environ["PATH"]
        finally:
            pool.close()
