"""The error hierarchy: every error is a FlowWeaverError and the built-in a user would catch."""

from __future__ import annotations

import pickle

import pytest

from flowweaver import (
    BindingError,
    ConfigurationError,
    CycleError,
    DefinitionError,
    DuplicateTaskError,
    EventLoopError,
    ExecutionError,
    FlowWeaverError,
    MissingDependencyError,
    RejectedResultError,
    ResultReleasedError,
    ResultUnavailableError,
    SerializationError,
    TaskFailedError,
    TaskTimeoutError,
    TransferError,
    UnknownDependencyError,
    UnknownTaskError,
    WorkflowFailedError,
)


@pytest.mark.parametrize(
    ("error", "builtins"),
    [
        (DefinitionError("x"), (ValueError,)),
        (ConfigurationError("x"), (ValueError, TypeError)),
        (DuplicateTaskError("a", "w"), (ValueError,)),
        (UnknownDependencyError("a", "b", "w"), (ValueError,)),
        (CycleError(["a", "b", "a"]), (ValueError,)),
        (BindingError("a", "why"), (ValueError, TypeError)),
        (UnknownTaskError("a", "w"), (KeyError,)),
        (ExecutionError("x"), (RuntimeError,)),
        (TaskFailedError("a", 1, OSError("x")), (RuntimeError,)),
        (EventLoopError("x"), (RuntimeError,)),
        (TaskTimeoutError("a", 1.5), (TimeoutError,)),
        (MissingDependencyError("DaskExecutor", "dask", "distributed"), (ImportError,)),
        (TransferError("a", "why"), (RuntimeError, TypeError, pickle.PicklingError)),
        (SerializationError("dict", "why"), (TypeError,)),
        (ResultUnavailableError("a", "why"), (RuntimeError,)),
        (ResultReleasedError("a"), (RuntimeError, ResultUnavailableError)),
        (RejectedResultError("a", 429), (RuntimeError,)),
    ],
)
def test_every_error_is_ours_and_a_builtin(
    error: Exception, builtins: tuple[type[Exception], ...]
) -> None:
    assert isinstance(error, FlowWeaverError)
    for builtin in builtins:
        assert isinstance(error, builtin)


def test_messages_name_the_culprit() -> None:
    assert str(DuplicateTaskError("load", "etl")) == "task 'load' already exists in workflow 'etl'"
    assert str(UnknownDependencyError("load", "xform", "etl")) == (
        "task 'load' depends on 'xform', which does not exist in workflow 'etl'"
    )
    assert str(CycleError(["a", "b", "a"])) == "dependency cycle: 'a' -> 'b' -> 'a'"
    assert str(UnknownTaskError("nope", "etl")) == "workflow 'etl' has no task named 'nope'"
    assert str(TaskTimeoutError("slow", 0.5)) == "task 'slow' timed out after 0.5 s"
    assert str(BindingError("t", "why")) == "task 't' cannot receive its inputs: why"


def test_cycle_error_carries_the_path() -> None:
    assert CycleError(["a", "b", "a"]).cycle == ("a", "b", "a")


def test_task_failed_error_carries_name_attempts_and_cause() -> None:
    cause = ValueError("bad row")
    error = TaskFailedError("load", 3, cause)
    assert (error.task_name, error.attempts, error.__cause__) == ("load", 3, cause)
    assert str(error) == "task 'load' failed after 3 attempts: ValueError: bad row"
    assert str(TaskFailedError("load", 1, cause)).startswith("task 'load' failed after 1 attempt:")


def test_task_failed_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(TaskFailedError("load", 2, ValueError("x"))))
    assert (error.task_name, error.attempts, repr(error.__cause__)) == (
        "load",
        2,
        "ValueError('x')",
    )


def test_workflow_failed_error_is_a_group_and_a_runtime_error() -> None:
    a = TaskFailedError("a", 1, ValueError("va"))
    b = TaskFailedError("b", 2, KeyError("kb"))
    error = WorkflowFailedError("etl", [a, b])
    assert isinstance(error, ExceptionGroup)
    assert isinstance(error, RuntimeError)
    assert error.failures == (a, b)
    assert error.workflow == "etl"
    assert error.__cause__ is a.__cause__
    assert str(error) == "workflow 'etl' failed: 2 tasks failed ('a', 'b') (2 sub-exceptions)"


def test_except_star_splits_a_workflow_failure() -> None:
    a = TaskFailedError("a", 1, ValueError("va"))
    caught: list[BaseException] = []
    try:
        raise WorkflowFailedError("etl", [a])
    except* TaskFailedError as group:
        caught.append(group)
    assert isinstance(caught[0], WorkflowFailedError)
    assert caught[0].failures == (a,)


def _samples() -> list[FlowWeaverError]:
    """One instance of every exported error class."""
    import flowweaver as fw

    cause = ValueError("root cause")
    failed = fw.TaskFailedError("load", 3, cause)
    return [
        fw.FlowWeaverError("plain"),
        fw.DefinitionError("bad definition"),
        fw.ConfigurationError("bad argument"),
        fw.StageValidationError("bad stage", "Fetch", "workers"),
        fw.DuplicateTaskError("a", "w"),
        fw.TaskNameCollisionError("a", "w", "mod.f", "mod.g"),
        fw.UnknownDependencyError("a", "b", "w"),
        fw.CycleError(["a", "b", "a"]),
        fw.SubflowCycleError(["outer", "inner", "outer"]),
        fw.BindingError("a", "why"),
        fw.UnknownTaskError("a", "w"),
        fw.UnknownRunError("etl", "r1"),
        fw.MissingDependencyError("DaskExecutor", "dask", "distributed"),
        fw.ExecutionError("went wrong"),
        fw.TaskTimeoutError("slow", 0.5),
        failed,
        fw.WorkflowFailedError("w", [failed]),
        fw.EventLoopError("in a loop"),
        fw.TransferError("load", "TypeError: cannot pickle 'lock'", destination="the cluster"),
        fw.WorkerDiedError("load", -9),
        fw.WorkerStartError("load", 86, "/tmp/job.py"),
        fw.ResultUnavailableError("load", "its Dask client is closed"),
        fw.ResultReleasedError("load"),
        fw.RejectedResultError("fetch", {"status": 429}),
        fw.ExecutorShutdownError("shut down"),
        fw.PipelineError("misused"),
        fw.ItemCancelledError(7, "Fetch"),
        fw.StateError("state"),
        fw.StateCorruptError("s.db", "truncated"),
        fw.StateVersionError("s.db", 9, 1),
        fw.StateLockedError("s.db", 5.0),
        fw.RunLockedError("s.db", "etl", "r1", "process 7 on host 'h' since 2026-01-01", 0.0),
        fw.StateAccessError("s.db", "read-only"),
        fw.SerializationError("socket", "no JSON form", task_name="load"),
        fw.StateMismatchError("load", "w", "r1"),
        fw.ItemMismatchError(7, "p", "r1"),
        fw.ElementFailedError("square", 3, 2, cause),
        fw.MappedTaskFailedError("square", [fw.ElementFailedError("square", 3, 2, cause)], 10),
        fw.MapDefinitionError("square", "why"),
        fw.MapInputError("square", "numbers", 5, "why"),
        fw.NotIterableError("square", "numbers", 5, "why"),
        fw.MapLengthError("pair", {"a": 2, "b": 3}),
    ]


def test_every_exported_error_has_a_pickling_sample() -> None:
    import flowweaver as fw

    exported = {
        getattr(fw, name)
        for name in fw.__all__
        if isinstance(getattr(fw, name), type) and issubclass(getattr(fw, name), FlowWeaverError)
    }
    assert exported == {type(error) for error in _samples()}


@pytest.mark.parametrize("error", _samples(), ids=lambda e: type(e).__name__)
def test_every_error_survives_pickling(error: FlowWeaverError) -> None:
    # Worker processes and Dask workers raise them; they come back to the run pickled.
    error.__cause__ = error.__cause__ or KeyError("cause")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy)) == (type(error), str(error))
    assert _comparable(vars(copy)) == _comparable(vars(error))
    assert repr(copy.__cause__) == repr(error.__cause__)


def _comparable(fields: dict[str, object]) -> dict[str, object]:
    # Exceptions compare by identity; a pickled copy's are equal when their reprs are.
    return {
        name: repr(value) if isinstance(value, BaseException | tuple) else value
        for name, value in fields.items()
    }


def test_a_bad_retries_count_is_named_as_the_caller_wrote_it() -> None:
    import asyncio

    from flowweaver import ConfigurationError, Pipeline

    async def fetch(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError) as info:
        asyncio.run(Pipeline.quick([1], fetch, retries=-1))
    assert str(info.value) == "stage 'fetch': retries must be an int >= 0, got -1"


def test_an_empty_run_id_is_refused_rather_than_replaced() -> None:
    from flowweaver import ConfigurationError, Task, Workflow

    wf = Workflow("w")
    wf.add_task(Task(name="a", fn=lambda: 1))
    with pytest.raises(ConfigurationError) as info:
        wf.execute(run_id="")
    assert str(info.value) == "run_id must be a non-empty str, got ''"


def test_pool_executor_refuses_the_async_pool() -> None:
    from flowweaver import AsyncExecutor, ConfigurationError, PoolExecutor

    with pytest.raises(ConfigurationError) as info:
        PoolExecutor(AsyncExecutor())  # type: ignore[arg-type]
    assert str(info.value) == (
        "PoolExecutor cannot wrap AsyncExecutor(use_uvloop=False, max_workers=None): its "
        "submit() returns an awaitable future; run workflows on it directly (it is an executor)"
    )
