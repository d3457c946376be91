"""Mapped tasks: one call per element, on every executor (see conftest: `executor`)."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import (
    DAG,
    ElementFailedError,
    FailurePolicy,
    Flow,
    MapDefinitionError,
    MapLengthError,
    MappedTaskFailedError,
    MemoryStore,
    Monitor,
    NotIterableError,
    SequentialExecutor,
    Task,
    TaskStatus,
    TaskTimeoutError,
    ThreadedExecutor,
    Workflow,
    WorkflowFailedError,
    WorkflowRun,
    task,
)

from .conftest import WAIT, Box, FakeClock, Recorder, SharedEvent, is_async, is_sequential
from .conftest import execute as run

S = TaskStatus


def mapped(source: Any, fn: Any, *, name: str = "square", **options: Any) -> Workflow:
    """numbers -> <name>, mapped over numbers."""
    wf = Workflow("mapped")
    wf.add_task(Task(name="numbers", fn=source))
    wf.add_task(Task(name=name, fn=fn, map_over="numbers", **options), depends_on=["numbers"])
    return wf


def _square(numbers: int) -> int:
    return numbers * numbers


def test_result_is_the_list_in_element_order(executor: Any) -> None:
    wf = mapped(lambda: list(range(20)), _square)
    wf.add_task(Task(name="total", fn=lambda square: sum(square)), depends_on=["square"])
    outcome = run(executor, wf)
    assert outcome.result("square") == [n * n for n in range(20)]
    assert outcome.result("total") == sum(n * n for n in range(20))
    assert outcome.status("square") is S.COMPLETED
    record = outcome.elements("square")
    assert record is not None
    assert (record.total, record.count("completed"), record.attempts, len(record)) == (
        20,
        20,
        20,
        20,
    )
    assert record.status(19) is S.COMPLETED
    assert outcome.elements("total") is None
    assert outcome.stats()["completed"] == 3  # tasks: the elements are in the record


def test_other_upstreams_are_broadcast_and_several_are_zipped(executor: Any) -> None:
    wf = Workflow("zip")
    wf.add_task(Task(name="xs", fn=lambda: [1, 2, 3]))
    wf.add_task(Task(name="ys", fn=lambda: (10, 20, 30)))
    wf.add_task(Task(name="k", fn=lambda: 100))
    wf.add_task(
        Task(name="f", fn=lambda k, xs, ys: k + xs * ys, map_over=("xs", "ys")),
        depends_on=["xs", "ys", "k"],
    )
    assert run(executor, wf).result("f") == [110, 140, 190]


def test_an_empty_upstream_maps_to_an_empty_list(executor: Any) -> None:
    wf = mapped(list, _square)
    outcome = run(executor, wf)
    assert (outcome.result("square"), outcome.status("square")) == ([], S.COMPLETED)


def test_the_decorator_and_flow_styles_map_with_map() -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def weights() -> list[int]:
        return [5, 6, 7]

    @task
    def square(n: int) -> int:
        return n * n

    @task
    def weigh(numbers: int, weights: int) -> int:
        return numbers * weights

    @task
    def total(square: list[int]) -> int:
        return sum(square)

    with DAG("dag") as dag:
        numbers >> square.map() >> total
    assert dag.run("sequential") == {"numbers": [1, 2, 3], "square": [1, 4, 9], "total": 14}
    assert square.map() is square.map()  # one mapped form, not two tasks with one name
    with DAG("zip") as zipped:
        [numbers, weights] >> weigh.map("numbers", "weights")
    assert zipped.run("thread")["weigh"] == [5, 12, 21]
    flow = Flow("flow").add(numbers).add(square.map()).add(total)
    assert flow.run("sequential")["total"] == 14
    assert "square (map over numbers)" in dag.to_mermaid()
    assert "[map over numbers, weights]" in zipped.to_text()


def test_export_shows_one_marked_node() -> None:
    wf = mapped(lambda: [1], _square)
    assert wf.to_text().splitlines()[2] == "  [1] square <- numbers [map over numbers]"
    assert '    square[["square (map over numbers)"]]' in wf.to_mermaid()
    assert '    square [label="square (map over numbers)", shape=box3d];' in wf.to_dot()


# -- definitions that cannot map ------------------------------------------------------------


def test_mapping_over_a_task_that_is_not_an_upstream_is_refused() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: [1]))
    with pytest.raises(MapDefinitionError) as info:
        wf.add_task(Task(name="m", fn=lambda a: a, map_over="numbers"), depends_on=["a"])
    assert str(info.value) == (
        "task 'm': map_over names 'numbers', which is not one of its upstream tasks ('a')"
    )
    assert isinstance(info.value, ValueError) and info.value.task_name == "m"
    assert "m" not in wf


@pytest.mark.parametrize("upstreams", [[], ["a", "b"]])
def test_map_without_a_name_needs_exactly_one_upstream(upstreams: list[str]) -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: [1]))
    wf.add_task(Task(name="b", fn=lambda: [2]))
    square = Task(name="square", fn=lambda *xs: xs).map()
    with pytest.raises(MapDefinitionError) as info:
        wf.add_task(square, depends_on=upstreams)
    have = ", ".join(repr(u) for u in upstreams) or "none"
    assert str(info.value) == (
        f"task 'square': .map() without an upstream name needs exactly one upstream task, and "
        f"it has {len(upstreams)} ({have}); name the one to map over: square.map('<upstream>')"
    )


def test_a_function_that_cannot_receive_the_elements_is_refused() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: [1]))
    with pytest.raises(MapDefinitionError) as info:
        wf.add_task(Task(name="m", fn=lambda: 1, map_over="a"), depends_on=["a"])
    assert str(info.value) == (
        "task 'm': its function has no parameter that receives the elements of 'a'"
    )


def test_results_not_kept_can_only_stream_into_a_sole_upstream_mapper() -> None:
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: [1]))
    wf.add_task(Task(name="k", fn=lambda: 1))
    wf.add_task(Task(name="b", fn=lambda a: a, map_over="a", keep_results=False), ["a"])
    with pytest.raises(MapDefinitionError) as info:
        wf.add_task(Task(name="c", fn=lambda b, k: b, map_over="b"), depends_on=["b", "k"])
    assert str(info.value) == (
        "task 'c': 'b' does not keep its results (keep_results=False), so it can only be "
        "mapped over by a task that has no other upstream (its elements then stream in as "
        "they finish)"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"map_over": ""}, "task 't': map_over must be an upstream task's name or a non-empty "
         "sequence of them, got ''"),
        ({"map_over": ["a", "a"]}, "task 't': map_over names an upstream twice: ['a', 'a']"),
        ({"map_over": "a", "map_limit": 0}, "task 't': map_limit must be an int >= 1, got 0"),
        ({"map_over": "a", "keep_results": 1}, "task 't': keep_results must be a bool, got 1"),
        ({"map_limit": 2}, "task 't': map_limit=2 needs map_over (a mapped task)"),
        ({"keep_results": False}, "task 't': keep_results=False needs map_over (a mapped task)"),
    ],
)  # fmt: skip
def test_bad_map_fields_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        Task(name="t", fn=lambda a: a, **options)
    assert str(info.value) == message


def test_a_mapped_task_cannot_be_mapped_again() -> None:
    square = Task(name="square", fn=_square).map()
    with pytest.raises(ValueError) as info:
        square.map()
    assert str(info.value) == "task 'square' is already mapped over <the only upstream>"


# -- run-time input that cannot be mapped ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "its result is a str, not a collection of elements (return a list of them to "
         "map over its parts): 'abc'"),
        (b"ab", "its result is a bytes, not a collection of elements (return a list of them "
         "to map over its parts): b'ab'"),
        ({"a": 1}, "its result is a mapping, not a collection of elements (map over its "
         ".items() or .keys()): {'a': 1}"),
        (7, "its result is not iterable: 7"),
    ],
)  # fmt: skip
def test_a_result_that_is_not_a_collection_fails_the_task(
    executor: Any, value: object, reason: str
) -> None:
    calls = Recorder()
    wf = mapped(lambda: value, calls)
    wf.add_task(Task(name="after", fn=lambda square: square), depends_on=["square"])
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf)
    (failure,) = info.value.failures
    cause = failure.__cause__
    assert isinstance(cause, NotIterableError) and isinstance(cause, TypeError)
    assert str(cause) == f"task 'square' cannot map over 'numbers': {reason}"
    assert (cause.task_name, cause.upstream, cause.value) == ("square", "numbers", value)
    outcome = wf.last_run
    assert outcome is not None
    assert outcome.statuses == {"numbers": S.COMPLETED, "square": S.FAILED,
                                "after": S.UPSTREAM_FAILED}  # fmt: skip
    assert calls.items == []


def test_zipped_upstreams_of_different_lengths_fail_the_task(executor: Any) -> None:
    wf = Workflow("zip")
    wf.add_task(Task(name="xs", fn=lambda: [1, 2, 3]))
    wf.add_task(Task(name="ys", fn=lambda: [1, 2]))
    wf.add_task(Task(name="f", fn=lambda xs, ys: xs, map_over=("xs", "ys")), ["xs", "ys"])
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf)
    cause = info.value.failures[0].__cause__
    assert isinstance(cause, MapLengthError) and isinstance(cause, ValueError)
    assert str(cause) == (
        "task 'f' cannot map over 'xs, ys': zipped upstreams must have the same length "
        "('xs' has 3, 'ys' has 2)"
    )
    assert cause.lengths == {"xs": 3, "ys": 2}


def _count(n: int) -> Iterator[int]:
    yield from range(n)


def test_zipped_generators_of_different_lengths_fail_once_one_runs_short() -> None:
    wf = Workflow("zip")
    wf.add_task(Task(name="xs", fn=lambda: _count(3)))
    wf.add_task(Task(name="ys", fn=lambda: [0, 1]))
    wf.add_task(Task(name="f", fn=lambda xs, ys: xs, map_over=("xs", "ys")), ["xs", "ys"])
    with pytest.raises(WorkflowFailedError) as info:
        wf.execute()
    cause = info.value.failures[0].__cause__
    assert isinstance(cause, MapLengthError)
    assert cause.lengths == {"xs": 3, "ys": 2}
    outcome = wf.last_run
    assert outcome is not None and all(s.is_terminal for s in outcome.statuses.values())


def test_mapping_over_a_skipped_upstream_skips_the_task(executor: Any) -> None:
    wf = Workflow("skip")
    wf.add_task(Task(name="numbers", fn=lambda: [1], when=lambda: False))
    wf.add_task(Task(name="square", fn=_square, map_over="numbers"), ["numbers"])
    wf.add_task(Task(name="after", fn=lambda square: square), ["square"])
    outcome = run(executor, wf)
    assert outcome.statuses == {"numbers": S.SKIPPED, "square": S.SKIPPED, "after": S.COMPLETED}
    assert (outcome.result("square"), outcome.result("after")) == (None, None)


# -- each element is an attempt of its own --------------------------------------------------


def test_each_element_is_retried_on_its_own(executor: Any, clock: FakeClock) -> None:
    seen = Recorder()

    def flaky(numbers: int) -> int:
        seen(numbers)
        if numbers % 2 and seen.count(numbers) < 3:
            raise OSError(f"flaky {numbers}")
        return numbers

    retried = Recorder()
    wf = mapped(lambda: [0, 1, 2, 3], flaky, retries=2, delay=0.5, on_retry=retried)
    outcome = run(executor, wf, clock=clock)
    assert outcome.result("square") == [0, 1, 2, 3]
    assert sorted(map(repr, seen.items)) == list("01112333")
    assert sorted(map(str, retried.items)) == [
        "('square[1]', 1)",
        "('square[1]', 2)",
        "('square[3]', 1)",
        "('square[3]', 2)",
    ]
    record = outcome.elements("square")
    assert record is not None and record.attempts == 8
    assert len(clock.sleeps) == 4 and all(s > 0 for s in clock.sleeps)


def _invert(numbers: int) -> float:
    return 1 / numbers


def test_failed_elements_fail_the_task_with_every_failure_and_index(executor: Any) -> None:
    wf = mapped(lambda: [1, 0, 2, 0, 4], _invert, retries=1, delay=0.0)
    wf.add_task(Task(name="after", fn=lambda square: square), ["square"])
    with pytest.raises(WorkflowFailedError) as info:
        run(executor, wf, failure_policy="continue")
    (failure,) = info.value.failures
    assert isinstance(failure, MappedTaskFailedError)
    assert [(f.index, f.attempts) for f in failure.element_failures] in (
        [(1, 2), (3, 2)],
        [(3, 2), (1, 2)],
    )
    assert all(isinstance(f.__cause__, ZeroDivisionError) for f in failure.element_failures)
    assert str(failure).startswith("task 'square' failed: 2 of 5 elements failed ([")
    outcome = wf.last_run
    assert outcome is not None
    assert (outcome.status("square"), outcome.status("after")) == (S.FAILED, S.UPSTREAM_FAILED)
    record = outcome.elements("square")
    assert record is not None
    assert (record.count("completed"), record.count("failed")) == (3, 2)
    assert record.status(1) is S.FAILED and record.status(2) is S.COMPLETED


def test_allow_failed_elements_completes_with_none_in_their_places(executor: Any) -> None:
    wf = mapped(lambda: [1, 0, 2], _invert, allow_failed_elements=True)
    wf.add_task(Task(name="after", fn=lambda square: square), ["square"])
    outcome = run(executor, wf)
    assert outcome.result("after") == [1.0, None, 0.5]
    record = outcome.elements("square")
    assert record is not None
    (failure,) = record.failures
    assert isinstance(failure, ElementFailedError)
    assert (failure.task_name, failure.index, failure.attempts) == ("square", 1, 1)
    assert (
        str(failure)
        == "task 'square[1]' failed after 1 attempt: ZeroDivisionError: division by zero"
    )


def test_fail_fast_starts_no_element_after_a_failure() -> None:
    calls = Recorder()

    def work(numbers: int) -> int:
        calls(numbers)
        if numbers == 2:
            raise ValueError("two")
        return numbers

    wf = mapped(lambda: list(range(10)), work)
    with pytest.raises(WorkflowFailedError):
        wf.execute(SequentialExecutor())
    assert calls.items == [0, 1, 2]
    outcome = wf.last_run
    assert outcome is not None and outcome.status("square") is S.FAILED
    record = outcome.elements("square")
    assert record is not None
    assert (record.count("completed"), record.count("failed")) == (2, 1)
    assert record.done == len(record)  # nothing left pending or running


@pytest.mark.in_process("the test releases the blocked element through an event")
def test_elements_observe_when_and_timeout(concurrent_executor: Any) -> None:
    release = SharedEvent()

    async def slow(numbers: int) -> int:
        if numbers == 1:
            await asyncio.sleep(WAIT)
        return numbers

    def blocking(numbers: int) -> int:
        if numbers == 1:
            release.wait(WAIT)
        return numbers

    fn = slow if is_async(concurrent_executor) else blocking
    wf = mapped(
        lambda: [0, 1, 2, 3], fn, timeout=0.2, when=lambda numbers: numbers != 3,
        allow_failed_elements=True,
    )  # fmt: skip
    try:
        outcome = run(concurrent_executor, wf)
    finally:
        release.set()
    assert outcome.result("square") == [0, None, 2, None]
    record = outcome.elements("square")
    assert record is not None
    assert (record.status(1), record.status(3)) == (S.FAILED, S.SKIPPED)
    assert isinstance(record.failures[0].__cause__, TaskTimeoutError)


def test_map_limit_caps_the_elements_running_at_once() -> None:
    lock = threading.Lock()
    running = [0, 0]  # now, most
    pair = threading.Barrier(2, timeout=WAIT)

    def work(numbers: int) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running)
        pair.wait()  # two do run together ...
        with lock:
            running[0] -= 1
        return numbers

    wf = mapped(lambda: list(range(8)), work, map_limit=2)
    with ThreadedExecutor(max_workers=6) as threads:
        assert threads.execute(wf).result("square") == list(range(8))
    assert running[1] == 2  # ... and never three


class Seen(Monitor):
    def __init__(self) -> None:
        self.names: list[tuple[str, TaskStatus]] = []
        self.elements: list[tuple[str, int] | None] = []

    def on_status_change(self, run: WorkflowRun, task_name: str, status: TaskStatus) -> None:
        self.names.append((task_name, status))
        self.elements.append(run.element_of(task_name))


def test_observers_see_each_element_under_its_index(executor: Any) -> None:
    changes = Recorder()
    monitor = Seen()
    wf = mapped(lambda: [1, 2], _square, on_status_change=changes)
    run(executor, wf, monitors=[monitor])
    assert changes.items[0] == ("square", S.RUNNING)
    assert changes.items[-1] == ("square", S.COMPLETED)
    for index in (0, 1):
        mine = [item[1] for item in changes.items if item[0] == f"square[{index}]"]  # type: ignore[index]
        assert mine == [S.RUNNING, S.COMPLETED]
    assert ("square[1]", S.COMPLETED) in monitor.names
    assert ("square", 1) in monitor.elements
    assert monitor.elements.count(None) == 4  # numbers and square: running, completed


def test_a_process_pool_maps_module_level_functions(process_executor: Any) -> None:
    wf = mapped(_numbers, _square)
    assert process_executor.execute(wf).result("square") == [0, 1, 4, 9]


def _numbers() -> list[int]:
    return [0, 1, 2, 3]


# -- streaming ------------------------------------------------------------------------------


@pytest.mark.not_on_dask("a burst of ready elements is read, then sent as one graph")
def test_a_generator_streams_into_its_mapper(executor: Any) -> None:
    if is_sequential(executor):
        pytest.skip("one call at a time: nothing can overlap")
    first = SharedEvent()

    def produce() -> Iterator[int]:
        yield 0
        # The generator goes on only once element 0 ran: it is pulled as elements start.
        assert first.wait(WAIT), "element 0 did not run while the generator produced"
        yield from range(1, 50)

    def work(numbers: int) -> int:
        if numbers == 0:
            first.set()
        return numbers

    wf = mapped(produce, work)
    outcome = run(executor, wf)
    assert outcome.result("square") == list(range(50))
    assert outcome.result("numbers") == 50  # a streamed generator: how many it yielded
    assert outcome.status("numbers") is S.COMPLETED


def test_the_generator_is_paused_while_the_buffer_is_full() -> None:
    pulled: list[int] = []

    def produce() -> Iterator[int]:
        for n in range(100):
            pulled.append(n)
            yield n

    def work(numbers: int) -> int:
        # map_limit=3: at most 3 elements admitted, so the generator is at most 3 ahead.
        assert len(pulled) <= numbers + 3
        return numbers

    wf = mapped(produce, work, map_limit=3)
    assert wf.execute().result("square") == list(range(100))


async def _produce_async() -> AsyncIterator[int]:
    for n in range(20):
        await asyncio.sleep(0)
        yield n


def test_an_async_generator_streams_too(executor: Any) -> None:
    wf = mapped(_produce_async, _square)
    assert run(executor, wf).result("square") == [n * n for n in range(20)]


def test_a_generator_someone_else_reads_whole_is_drained_into_a_list(executor: Any) -> None:
    wf = mapped(lambda: _count(4), _square)
    wf.add_task(Task(name="whole", fn=lambda numbers: numbers), ["numbers"])
    outcome = run(executor, wf)
    assert (outcome.result("square"), outcome.result("whole")) == ([0, 1, 4, 9], [0, 1, 2, 3])


def test_a_chain_of_mapped_tasks_runs_element_wise(executor: Any) -> None:
    if is_sequential(executor):
        pytest.skip("one call at a time: nothing can overlap")
    last_started = SharedEvent()

    def b(x: int) -> int:
        if x == 9:
            # The last element of b waits until c has taken an element: no barrier.
            assert last_started.wait(WAIT), "c did not start before b had finished"
        return x * 10

    def c(x: int) -> int:
        last_started.set()
        return x + 1

    wf = Workflow("chain")
    wf.add_task(Task(name="a", fn=lambda: _count(10)))
    wf.add_task(Task(name="b", fn=b, map_over="a"), ["a"])
    wf.add_task(Task(name="c", fn=c, map_over="b", keep_results=False), ["b"])
    wf.add_task(Task(name="whole", fn=lambda b: len(b)), ["b"])
    outcome = run(executor, wf)
    assert outcome.result("b") == [x * 10 for x in range(10)]
    assert (outcome.result("c"), outcome.result("whole")) == (10, 10)


def test_a_generator_that_raises_fails_its_task_and_its_mapper_is_upstream_failed() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    wf = mapped(produce, _square)
    wf.add_task(Task(name="c", fn=lambda x: x, map_over="square"), ["square"])
    with pytest.raises(WorkflowFailedError) as info:
        wf.execute(failure_policy=FailurePolicy.CONTINUE)
    assert [f.task_name for f in info.value.failures] == ["numbers"]
    outcome = wf.last_run
    assert outcome is not None
    assert outcome.statuses == {"numbers": S.FAILED, "square": S.UPSTREAM_FAILED,
                                "c": S.UPSTREAM_FAILED}  # fmt: skip


def test_a_failed_element_upstream_is_upstream_failed_downstream(executor: Any) -> None:
    wf = Workflow("chain")
    wf.add_task(Task(name="a", fn=lambda: [1, 0, 2]))
    wf.add_task(Task(name="b", fn=_invert, map_over="a", allow_failed_elements=True), ["a"])
    wf.add_task(Task(name="c", fn=lambda x: x * 2, map_over="b"), ["b"])
    outcome = run(executor, wf)
    assert outcome.result("c") == [2.0, None, 1.0]
    record = outcome.elements("c")
    assert record is not None and record.status(1) is S.UPSTREAM_FAILED


# -- durable and cached, per element --------------------------------------------------------


def test_a_resumed_run_reruns_only_the_elements_that_did_not_complete(executor: Any) -> None:
    calls = Recorder()
    broken = Box(True)

    def work(numbers: int) -> int:
        calls(numbers)
        if numbers in (3, 7) and broken.value:
            raise RuntimeError("boom")
        return numbers * 2

    store = MemoryStore()
    wf = mapped(lambda: list(range(10)), work)
    with pytest.raises(WorkflowFailedError):
        run(executor, wf, store=store, run_id="r1", failure_policy="continue")
    assert sorted(map(repr, calls.items)) == sorted(map(repr, range(10)))
    calls.items.clear()
    broken.value = False
    outcome = run(executor, wf, store=store, run_id="r1")
    assert sorted(map(repr, calls.items)) == ["3", "7"]
    assert outcome.result("square") == [n * 2 for n in range(10)]
    kept = [f"square[{n}]" for n in range(10) if n not in (3, 7)]
    assert sorted(outcome.restored) == sorted(["numbers", *kept])
    calls.items.clear()
    again = run(executor, wf, store=store, run_id="r1")
    assert calls.items == [] and sorted(again.restored) == ["numbers", "square"]


def test_a_cached_mapped_task_computes_each_element_once(executor: Any) -> None:
    calls = Recorder()

    def work(numbers: int) -> int:
        calls(numbers)
        return -numbers

    wf = Workflow("cached")
    source = Box([1, 2, 3])
    wf.add_task(Task(name="numbers", fn=lambda: source.value))
    wf.add_task(Task(name="neg", fn=work, map_over="numbers", cache=True), ["numbers"])
    store = MemoryStore()
    assert run(executor, wf, store=store).result("neg") == [-1, -2, -3]
    source.value = [3, 4, 1]
    outcome = run(executor, wf, store=store)
    assert outcome.result("neg") == [-3, -4, -1]
    assert sorted(map(repr, calls.items)) == ["1", "2", "3", "4"]
    assert sorted(outcome.cached) == ["neg[0]", "neg[2]"]


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    outcomes=st.lists(st.lists(st.booleans(), min_size=1, max_size=4), max_size=30),
    retries=st.integers(0, 3),
    limit=st.none() | st.integers(1, 4),
    keep_going=st.booleans(),
    threaded=st.booleans(),
)
def test_every_element_ends_once_in_order_within_its_attempts(
    outcomes: list[list[bool]], retries: int, limit: int | None, keep_going: bool, threaded: bool
) -> None:
    """For random element counts, failures and retries: each element runs at most
    retries + 1 times, results come back in element order, and every element ends in a result
    or a recorded failure."""
    lock = threading.Lock()
    attempts = [0] * len(outcomes)

    def work(numbers: int) -> int:
        with lock:
            attempt = attempts[numbers]
            attempts[numbers] += 1
        plan = outcomes[numbers]
        if not plan[min(attempt, len(plan) - 1)]:
            raise OSError(f"element {numbers} attempt {attempt}")
        return numbers * 10

    wf = mapped(
        lambda: list(range(len(outcomes))), work, retries=retries, delay=0.0,
        map_limit=limit, allow_failed_elements=keep_going,
    )  # fmt: skip
    executor = ThreadedExecutor(max_workers=3) if threaded else SequentialExecutor()
    try:
        wf.execute(executor, failure_policy="continue", clock=FakeClock())
    except WorkflowFailedError:
        pass
    finally:
        if threaded:
            assert isinstance(executor, ThreadedExecutor)
            executor.shutdown()
    outcome = wf.last_run
    assert outcome is not None
    record = outcome.elements("square")
    assert record is not None
    failed = {f.index for f in record.failures}
    assert len(failed) == len(record.failures)  # each failure recorded once
    for n, plan in enumerate(outcomes):
        assert 1 <= attempts[n] <= retries + 1
        succeeds = any(plan[min(a, len(plan) - 1)] for a in range(retries + 1))
        assert (n in failed) is not succeeds
        assert record.status(n) is (S.FAILED if n in failed else S.COMPLETED)
    assert record.done == len(record) == len(outcomes) == record.total
    if keep_going or not failed:
        expected = [None if n in failed else n * 10 for n in range(len(outcomes))]
        assert outcome.result("square") == expected
        assert outcome.status("square") is S.COMPLETED
    else:
        assert outcome.status("square") is S.FAILED
        (failure,) = outcome.failures
        assert isinstance(failure, MappedTaskFailedError)
        assert {f.index for f in failure.element_failures} == failed


# -- what users see -------------------------------------------------------------------------


def test_the_progress_line_and_the_cli_summary_count_elements() -> None:
    from flowweaver._cli import _summary
    from flowweaver._progress import ProgressMonitor

    out = io.StringIO()
    wf = mapped(lambda: ["a", "b", "c"], len, allow_failed_elements=True)
    wf.add_task(Task(name="total", fn=lambda square: sum(square)), ["square"])
    outcome = wf.execute(monitors=[ProgressMonitor(out)])
    assert out.getvalue().splitlines()[-1].startswith("mapped  [" + "#" * 24 + "]  5/5 100%")
    summary = _summary(outcome).splitlines()
    assert summary[2].split()[:3] == ["square", "completed", "3"]
    assert summary[2].endswith("  [3 elements: 3 completed]")
