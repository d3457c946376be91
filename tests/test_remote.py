"""Results kept elsewhere (``Remote``): fetched when read, once, in batches; never by the engine
except for a ``when=`` predicate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowweaver import SequentialExecutor, Task, Workflow, WorkflowRun
from flowweaver._run import Remote

if TYPE_CHECKING:
    from collections.abc import Sequence


class Kept(Remote):
    """A remote whose fetches are counted, one by one and in batches."""

    log: list[object] = []

    def __init__(self, value: object) -> None:
        self.value = value

    def fetch(self) -> object:
        Kept.log.append(("one", self.value))
        return self.value

    @classmethod
    def fetch_many(cls, remotes: Sequence[Remote]) -> list[object]:
        values = [r.value for r in remotes if isinstance(r, Kept)]
        Kept.log.append(("many", values))
        return values


def run_of(results: dict[str, object]) -> WorkflowRun:
    names = list(results)
    run = WorkflowRun("w", "r", names, {n: i for i, n in enumerate(names)})
    for i, value in enumerate(results.values()):
        run._results[i] = value
        run._statuses[i] = run._statuses[i].COMPLETED
    return run


def test_a_remote_result_is_fetched_once_when_read() -> None:
    Kept.log.clear()
    run = run_of({"a": Kept(1), "b": 2})
    assert Kept.log == []
    assert run.result("a") == 1
    assert run.result("a") == 1
    assert run.result_at(0) == 1
    assert Kept.log == [("one", 1)]


def test_results_fetch_every_remote_in_one_batch() -> None:
    Kept.log.clear()
    run = run_of({"a": Kept(1), "b": 2, "c": Kept(3)})
    assert run.results == {"a": 1, "b": 2, "c": 3}
    assert run.results == {"a": 1, "b": 2, "c": 3}
    assert Kept.log == [("many", [1, 3])]


def test_the_engine_passes_remotes_on_unread_but_a_when_predicate_reads_them() -> None:
    Kept.log.clear()
    seen: list[object] = []
    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: Kept(5)))  # as if an executor kept it elsewhere
    wf.add_task(Task(name="b", fn=lambda a: seen.append(a)), depends_on=["a"])
    wf.add_task(Task(name="c", fn=lambda a: "ran", when=lambda a: a == 5), depends_on=["a"])
    run = SequentialExecutor().execute(wf)
    assert isinstance(seen[0], Kept)  # handed on as it was: the executor unwraps its own
    assert Kept.log == [("one", 5)]  # fetched for the predicate only
    assert run.result("c") == "ran"
