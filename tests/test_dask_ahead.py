"""Look-ahead on Dask (``_dask_ahead``): calls sent before their dependencies finish, adopted
by the engine's attempt when they do; the engine's rules unchanged.

Which tasks qualify is pure code, tested without a cluster; the rest runs on the session's
in-process cluster (tasks share recorders and events with the test), and one random graph on
worker processes.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    ConfigurationError,
    DaskExecutor,
    FailurePolicy,
    Limiter,
    SequentialExecutor,
    Task,
    TaskStatus,
    Workflow,
    WorkflowFailedError,
    WorkflowRun,
)
from flowweaver._dask_ahead import Guarded, Refused, _eligible, looks_ahead
from flowweaver._engine_factory import make_engine

from .conftest import HAVE_DASK, WAIT, Recorder, SharedEvent

S = TaskStatus
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="the 'dask' extra is not installed")


def one() -> int:
    return 1


def add(*xs: int) -> int:
    return sum(xs)


def test_only_tasks_the_engine_would_send_unconditionally_are_looked_ahead() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=one))
    wf.add_task(Task(name="plain", fn=add), depends_on=["a"])
    wf.add_task(Task(name="named", fn=lambda a: a), depends_on=["a"])
    wf.add_task(Task(name="when", fn=add, when=lambda: True), depends_on=["a"])
    wf.add_task(Task(name="skips", fn=add, skip_if_upstream_skipped=True), depends_on=["a"])
    wf.add_task(Task(name="limited", fn=add, limits=[Limiter(2)]), depends_on=["a"])
    wf.add_task(Task(name="takes_nothing", fn=one), depends_on=["a"])  # Dask would not wait
    wf.add_task(Task(name="defaults", fn=lambda k=3: k), depends_on=["a"])  # closure idiom
    engine = make_engine(wf, {})
    eligible = {t.name for j, t in enumerate(engine.tasks) if _eligible(engine, j)}
    assert eligible == {"plain", "named"}  # a root is ready at once: nothing to look ahead of


@pytest.mark.parametrize(
    "change",
    [
        {"timeout": 5.0},  # its clock must start when its call does
        {"priority": 1},  # Dask would not order the calls sent ahead
        {"limits": [Limiter(1)]},  # a permit must not wait in Dask's queue behind them
        {"cache": True},  # a cached result settles the task without a call
    ],
)
def test_runs_with_timeouts_limits_priorities_or_durable_state_do_not_look_ahead(
    change: dict[str, Any],
) -> None:
    assert looks_ahead(make_engine(wf_of(), {}))
    assert not looks_ahead(make_engine(wf_of(**change), {}))


def wf_of(**change: Any) -> Workflow:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=one))
    wf.add_task(Task(name="b", fn=add, **change), depends_on=["a"])
    return wf


def test_the_guard_refuses_a_subflow_or_a_refused_call_as_an_argument() -> None:
    assert Guarded(add, add)(1, 2) == 3
    assert Guarded(lambda: 0, add).__name__ == "add"  # Dask's key prefix: the function's name
    assert isinstance(Guarded(add, add)(Workflow("sub")), Refused)
    assert isinstance(Guarded(add, add)(1, Refused()), Refused)
    assert isinstance(Guarded(lambda x: x, add)(x=Refused()), Refused)


@pytest.fixture
def ahead(dask_threads: DaskExecutor) -> DaskExecutor:
    """The in-process cluster's client, with look-ahead (off by default)."""
    return DaskExecutor(dask_threads.client, lookahead=1000)


@pytest.fixture
def graphs(dask_threads: DaskExecutor, monkeypatch: pytest.MonkeyPatch) -> Graphs:
    return Graphs(dask_threads, monkeypatch)


class Graphs:
    """Records the task names of every graph the run sends to the scheduler, in order."""

    def __init__(self, executor: DaskExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = executor.client
        self.sent: list[list[str]] = []
        self.events: dict[str, SharedEvent] = {}
        submit, map_ = self.client.submit, self.client.map

        def one_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
            self._record([args[3]])  # invoke, (fn, args, kwargs, name, timeout)
            return submit(fn, *args, **kwargs)

        def many(fn: Any, *iterables: Any, **kwargs: Any) -> Any:
            self._record(list(iterables[3]))
            return map_(fn, *iterables, **kwargs)

        monkeypatch.setattr(self.client, "submit", one_call)
        monkeypatch.setattr(self.client, "map", many)

    def when_sent(self, name: str) -> SharedEvent:
        """An event set once a call of task ``name`` has been sent."""
        return self.events.setdefault(name, SharedEvent())

    def _record(self, names: list[str]) -> None:
        self.sent.append(names)
        for name in names:
            if name in self.events:
                self.events[name].set()

    def calls(self, name: str) -> int:
        return sum(names.count(name) for names in self.sent)


@needs_dask
def test_a_dependant_is_sent_while_its_dependency_still_runs(
    ahead: DaskExecutor, graphs: Graphs
) -> None:
    ran = Recorder()
    b_sent = graphs.when_sent("b")

    def a() -> bool:
        return b_sent.wait(WAIT)  # without look-ahead, b is sent only once this returns

    def b(x: bool) -> str:
        ran("b")
        return f"b got {x}"

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=a))
    wf.add_task(Task(name="b", fn=b), depends_on=["a"])
    run = ahead.execute(wf)
    assert run.result("b") == "b got True"
    assert graphs.sent == [["a"], ["b"]]  # b's call ahead of time was its attempt's call
    assert ran.items == ["b"]
    assert run.attempts("b") == 1


@needs_dask
def test_the_look_ahead_is_bounded_and_zero_turns_it_off(
    ahead: DaskExecutor, graphs: Graphs
) -> None:
    def build(name: str, wait: bool) -> Workflow:
        gate = graphs.when_sent(f"{name}0")
        wf = Workflow(name)
        wf.add_task(Task(name=f"{name}root", fn=lambda: not wait or gate.wait(WAIT)))
        for k in range(10):
            wf.add_task(Task(name=f"{name}{k}", fn=add), depends_on=[f"{name}root"])
        return wf

    two = DaskExecutor(ahead.client, lookahead=2)
    assert two.execute(build("x", wait=True)).result("xroot") is True
    assert [len(names) for names in graphs.sent] == [1, 2, 8]  # 2 ahead, the rest when ready

    graphs.sent.clear()
    off = DaskExecutor(ahead.client, lookahead=0)
    assert off.execute(build("y", wait=False)).ok
    assert [len(names) for names in graphs.sent] == [1, 10]


@needs_dask
def test_a_retried_dependency_sends_its_dependant_again_which_runs_once(
    ahead: DaskExecutor, graphs: Graphs
) -> None:
    attempts, ran = Recorder(), Recorder()
    b_sent = graphs.when_sent("b")

    def a() -> int:
        attempts("a")
        if attempts.count("a") == 1:
            b_sent.wait(WAIT)  # fail only once b's call is on the cluster, depending on this
            raise ValueError("first attempt")
        return 2

    def b(x: int) -> int:
        ran("b")
        return x * 10

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=a, retries=1, delay=0))
    wf.add_task(Task(name="b", fn=b), depends_on=["a"])
    run = ahead.execute(wf)
    assert run.result("b") == 20
    assert ran.items == ["b"]  # the call that depended on the failed attempt never ran
    assert graphs.calls("b") == 2  # sent ahead on each attempt of a
    assert run.attempts("a") == 2
    assert run.attempts("b") == 1


@needs_dask
def test_a_dependency_that_fails_for_good_never_runs_its_dependant(
    ahead: DaskExecutor, graphs: Graphs
) -> None:
    ran = Recorder()
    b_sent = graphs.when_sent("b")

    def a() -> int:
        b_sent.wait(WAIT)
        raise ValueError("no")

    def b(x: int) -> int:
        ran("b")
        return x

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=a))
    wf.add_task(Task(name="b", fn=b), depends_on=["a"])
    wf.add_task(Task(name="other", fn=one))
    with pytest.raises(WorkflowFailedError) as failed:
        ahead.execute(wf, failure_policy=FailurePolicy.CONTINUE)
    run = failed.value.run
    assert run is not None
    assert graphs.calls("b") == 1  # sent ahead, while a ran
    assert ran.items == []
    assert run.status("b") is TaskStatus.UPSTREAM_FAILED
    assert run.result("other") == 1


def make_subflow() -> Workflow:
    sub = Workflow("sub")
    sub.add_task(Task(name="inner", fn=lambda: 5))
    return sub


@needs_dask
def test_a_dependency_that_returns_a_subflow_refuses_the_look_ahead_call(
    ahead: DaskExecutor, graphs: Graphs
) -> None:
    ran = Recorder()
    b_sent = graphs.when_sent("b")

    def builder() -> Workflow:
        b_sent.wait(WAIT)
        return make_subflow()

    def b(x: object) -> object:
        ran("b", x)
        return x

    wf = Workflow("w")
    wf.add_task(Task(name="builder", fn=builder))
    wf.add_task(Task(name="b", fn=b), depends_on=["builder"])
    run = ahead.execute(wf)
    assert run.result("b") == {"inner": 5}  # the subflow's result, not the workflow object
    assert ran.items == [("b", {"inner": 5})]
    assert graphs.calls("b") == 2  # ahead (refused on the worker), then when ready


def random_graph(n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [sorted(rng.sample(range(i), min(i, rng.randint(0, 3)))) for i in range(n)]


@needs_dask
def test_a_random_graph_on_worker_processes_computes_what_the_sequential_run_does(
    dask_processes: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    graphs = Graphs(dask_processes, monkeypatch)
    deps = random_graph(60, seed=3)
    expected = SequentialExecutor().execute(labelled_with_roots(deps)).results
    run = dask_processes.execute(labelled_with_roots(deps))
    assert run.results == expected
    assert sum(len(names) for names in graphs.sent) == len(deps)  # every call sent once
    assert len(graphs.sent) < len(deps) / 2  # and most of them in graphs of several


def labelled_with_roots(deps: list[list[int]]) -> Workflow:
    wf = Workflow("random")
    for i, ds in enumerate(deps):
        fn: Any = (lambda i=i: i) if not ds else add
        wf.add_task(Task(name=f"t{i}", fn=fn), depends_on=[f"t{d}" for d in ds])
    return wf


@needs_dask
def test_lookahead_must_be_a_count(dask_threads: DaskExecutor) -> None:
    with pytest.raises(ConfigurationError) as info:
        DaskExecutor(dask_threads.client, lookahead=-1)
    assert str(info.value) == "DaskExecutor: lookahead must be an int >= 0, got -1"
    assert "lookahead=0" in repr(DaskExecutor(dask_threads.client))  # off by default


def flaky_graph(
    deps: list[list[int]], flaky: set[int], broken: set[int], calls: Recorder
) -> Workflow:
    """Task ``t{i}`` sums its inputs plus one; a flaky task fails its first attempt (and is
    retried), a broken one fails every attempt (no retry). Every call is recorded."""
    wf = Workflow("flaky")
    for i, ds in enumerate(deps):
        name = f"t{i}"

        def fn(*xs: int, name: str = name, i: int = i) -> int:
            calls(name)
            if i in broken or (i in flaky and calls.count(name) == 1):
                raise ValueError(name)
            return sum(xs) + 1

        retries = 1 if i in flaky else 0
        wf.add_task(
            Task(name=name, fn=fn, retries=retries, delay=0), depends_on=[f"t{d}" for d in ds]
        )
    return wf


def ended(
    executor: SequentialExecutor | DaskExecutor,
    wf: Workflow,
    policy: FailurePolicy = FailurePolicy.CONTINUE,
) -> WorkflowRun:
    """The run of ``wf``, failed or not."""
    try:
        return executor.execute(wf, failure_policy=policy)
    except WorkflowFailedError as error:
        run = error.run
    if run is None:
        raise AssertionError("a failed run carries its record")
    return run


@needs_dask
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_every_call_that_ran_was_an_attempt_and_the_run_ends_as_a_sequential_one(
    dask_threads: DaskExecutor, data: st.DataObject
) -> None:
    ahead = DaskExecutor(dask_threads.client, lookahead=1000)
    n = data.draw(st.integers(2, 12), label="tasks")
    deps = [
        sorted(data.draw(st.sets(st.integers(0, i - 1), max_size=3), label=f"deps{i}")) if i else []
        for i in range(n)
    ]
    flaky = data.draw(st.sets(st.integers(0, n - 1)), label="flaky")
    broken = data.draw(st.sets(st.integers(0, n - 1), max_size=2), label="broken") - flaky
    expected = ended(SequentialExecutor(), flaky_graph(deps, flaky, broken, Recorder()))
    calls = Recorder()
    run = ended(ahead, flaky_graph(deps, flaky, broken, calls))
    assert run.statuses == expected.statuses
    assert {k: v for k, v in run.results.items() if v is not None} == {
        k: v for k, v in expected.results.items() if v is not None
    }
    for i in range(n):  # a call sent ahead on an attempt that failed never ran
        assert calls.count(f"t{i}") == run.attempts(f"t{i}") == expected.attempts(f"t{i}")
    calls = Recorder()  # fail-fast cancels what was sent ahead; the client stays connected
    fast = ended(ahead, flaky_graph(deps, flaky, broken, calls), FailurePolicy.FAIL_FAST)
    assert all(status.is_terminal for status in fast.statuses.values())
    for i in range(n):  # one that had started when the run stopped is recorded as it ran
        name = f"t{i}"
        ran, attempts = calls.count(name), fast.attempts(name)
        if fast.status(name) is S.CANCELLED:  # a begun call may not have started; one sent
            assert ran <= max(attempts, 1)  # ahead may have failed as its dependency's call
        else:  # was cancelled while finishing (so its failure reads as the dependency's)
            assert ran == attempts
    assert ahead.client.submit(add, 1, 2).result(timeout=WAIT) == 3


@needs_dask
def test_a_result_refused_by_retry_if_result_is_retried_when_sent_ahead(
    ahead: DaskExecutor, graphs: Graphs
) -> None:
    calls = Recorder()
    b_sent = graphs.when_sent("b")

    def a() -> bool:
        return b_sent.wait(WAIT)

    def b(ok: bool) -> int:
        calls("b")
        return calls.count("b")

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=a))
    wf.add_task(
        Task(name="b", fn=b, retries=2, delay=0, retry_if_result=lambda n: n < 2),
        depends_on=["a"],
    )
    run = ahead.execute(wf)
    assert run.result("a") is True  # b was sent ahead
    assert (run.result("b"), run.attempts("b")) == (2, 2)
