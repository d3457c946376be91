"""keep_results=: a run that releases every result it was not asked to keep, once nothing in
the run can read it again (the tasks that read it have ended, retries included)."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pytest

from flowweaver import (
    ConfigurationError,
    MemoryStore,
    ResultReleasedError,
    ResultUnavailableError,
    SequentialExecutor,
    Task,
    ThreadedExecutor,
    UnknownTaskError,
    Workflow,
    WorkflowFailedError,
)
from flowweaver import TaskStatus as S

from ._doc_examples import promised_output, python_blocks, run_block
from .conftest import diamond, execute


class Big:
    """A result whose lifetime the test watches (a weak reference sees it go)."""


def released(run: Any, name: str) -> bool:
    with pytest.raises(ResultReleasedError) as caught:
        run.result(name)
    assert str(caught.value) == (
        f"the result of task {name!r} cannot be fetched: the run released it once the tasks "
        f"that read it had ended (keep it with keep_results=[..., {name!r}])"
    )
    assert caught.value.task_name == name
    return isinstance(caught.value, ResultUnavailableError)


def test_only_the_named_results_are_kept(executor: Any) -> None:
    wf = diamond()
    run = execute(executor, wf, keep_results=["join", "left"])
    assert run.ok and run.result("join") == (11, 20) and run.result("left") == 11
    assert run.results == {"left": 11, "join": (11, 20)}
    assert released(run, "src") and released(run, "right")
    # The seeds' accessors say the same; a run without the option keeps everything.
    with pytest.raises(ResultReleasedError):
        wf.get_task_result("src")
    with pytest.raises(ResultReleasedError):
        _ = wf.get_task("right").result  # type: ignore[union-attr]
    assert execute(executor, wf).results == {"src": 10, "left": 11, "right": 20, "join": (11, 20)}


@pytest.mark.parametrize("make", [SequentialExecutor, lambda: ThreadedExecutor(2)])
def test_a_result_goes_once_the_last_task_that_reads_it_has_ended(make: Any) -> None:
    refs: dict[str, weakref.ref[Big]] = {}
    seen: list[tuple[bool, bool]] = []

    def produce(name: str) -> Any:
        def fn(*inputs: object) -> Big:
            value = Big()
            refs[name] = weakref.ref(value)
            return value

        return fn

    def check(*inputs: object) -> None:
        # a is read by b only, and b has ended; b is still read by c, which runs now.
        seen.append((refs["a"]() is None, refs["b"]() is None))

    wf = Workflow("chain")
    wf.add_task(Task(name="a", fn=produce("a")))
    wf.add_task(Task(name="b", fn=produce("b")), depends_on=["a"])
    wf.add_task(Task(name="c", fn=check), depends_on=["b"])
    with make() as executor:
        run = executor.execute(wf, keep_results=["c"])
        assert seen == [(True, False)] and refs["b"]() is None
        executor.execute(wf)
        assert seen[-1] == (False, False)  # by default every result stays
    assert run.results == {"c": None}


@pytest.mark.not_on_dask("the recorder lives in this process")
def test_a_retried_reader_gets_its_input_again(executor: Any) -> None:
    calls: list[object] = []

    def flaky(up: object) -> object:
        calls.append(up)
        if len(calls) == 1:
            raise ValueError("once")
        return up

    wf = Workflow("retry")
    wf.add_task(Task(name="up", fn=lambda: "input"))
    wf.add_task(Task(name="down", fn=flaky, retries=1, delay=0.0), depends_on=["up"])
    run = execute(executor, wf, keep_results=["down"])
    assert calls == ["input", "input"] and run.result("down") == "input"
    assert run.attempts("down") == 2 and released(run, "up")


def test_a_reader_that_fails_for_good_releases_its_inputs() -> None:
    def boom(up: object) -> object:
        raise ValueError("no")

    wf = Workflow("fails")
    wf.add_task(Task(name="up", fn=lambda: 1))
    wf.add_task(Task(name="down", fn=boom), depends_on=["up"])
    wf.add_task(Task(name="after", fn=lambda down: down), depends_on=["down"])
    with pytest.raises(WorkflowFailedError) as caught:
        SequentialExecutor().execute(wf, keep_results=["after"])
    run = caught.value.run
    assert run is not None
    assert run.status("after") is S.UPSTREAM_FAILED and released(run, "up")
    assert run.results == {}


@pytest.mark.not_on_dask("the recorder lives in this process")
def test_mapped_tasks_read_every_element_before_the_list_goes(executor: Any) -> None:
    attempts: dict[int, int] = {}

    def square(n: int) -> int:
        attempts[n] = attempts.get(n, 0) + 1
        if n == 2 and attempts[n] == 1:
            raise ValueError("retry me")
        return n * n

    wf = Workflow("mapped")
    wf.add_task(Task(name="numbers", fn=lambda: [1, 2, 3]))
    wf.add_task(Task(name="square", fn=square, retries=1, delay=0.0).map(), depends_on=["numbers"])
    wf.add_task(Task(name="total", fn=lambda square: sum(square)), depends_on=["square"])
    run = execute(executor, wf, keep_results=["total"])
    assert run.result("total") == 14 and attempts == {1: 1, 2: 2, 3: 1}
    assert released(run, "numbers") and released(run, "square")


def test_a_durable_run_resumes_and_caches_what_it_released() -> None:
    store = MemoryStore()
    ran: list[str] = []

    def step(name: str, fail: list[bool]) -> Any:
        def fn(*inputs: object) -> str:
            ran.append(name)
            if fail and fail.pop():
                raise ValueError("crash")
            return name + "".join(map(str, inputs))

        return fn

    crash = [True]
    wf = Workflow("durable")
    wf.add_task(Task(name="a", fn=step("a", [])))
    wf.add_task(Task(name="b", fn=step("b", []), cache=True), depends_on=["a"])
    wf.add_task(Task(name="c", fn=step("c", crash)), depends_on=["b"])
    with pytest.raises(WorkflowFailedError):
        SequentialExecutor().execute(wf, store=store, run_id="r", keep_results=["c"])
    run = SequentialExecutor().execute(wf, store=store, run_id="r", keep_results=["c"])
    assert ran == ["a", "b", "c", "c"] and run.result("c") == "cba"
    assert run.restored == ["a", "b"] and released(run, "b")
    # The cache still holds b's result for a fresh run: b is not run again.
    again = SequentialExecutor().execute(wf, store=store, keep_results=["b", "c"])
    assert again.cached == ["b"] and again.result("b") == "ba" and ran[-2:] == ["a", "c"]


def test_a_subflow_reads_and_is_read_like_any_task(executor: Any) -> None:
    child = Workflow("child")
    child.add_task(Task(name="one", fn=lambda: 1))
    child.add_task(Task(name="two", fn=lambda one: one + 1), depends_on=["one"])
    parent = Workflow("parent")
    parent.add_task(Task(name="start", fn=lambda: 10))
    parent.add_task(child, depends_on=["start"])
    parent.add_task(Task(name="end", fn=lambda child: child["two"] * 100), depends_on=["child"])
    run = execute(executor, parent, keep_results=["end"])
    assert run.result("end") == 200 and run.results == {"end": 200}
    assert released(run, "child") and released(run, "child/two") and released(run, "start")
    kept = execute(executor, parent, keep_results=["child"])
    assert kept.result("child") == {"one": 1, "two": 2} and kept.result("child/two") == 2


@pytest.mark.parametrize(
    ("keep", "error", "message"),
    [
        ("src", ConfigurationError,
         "keep_results must be a collection of task names (or None), got 'src'"),
        (["src", 3], ConfigurationError,
         "keep_results must hold task names (str), got 3 in ['src', 3]"),
        (["srcc"], UnknownTaskError, "workflow 'diamond' has no task named 'srcc'"),
    ],
)  # fmt: skip
def test_bad_keep_results_name_the_culprit(keep: object, error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        SequentialExecutor().execute(diamond(), keep_results=keep)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_the_guide_example_runs_and_prints_what_it_promises(tmp_path: Path) -> None:
    (block,) = [b for b in python_blocks("docs/guide/workflows.md") if "ResultReleasedError" in b]
    done = run_block(block, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == promised_output(block) != []
