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
    ],
)
def test_every_error_is_ours_and_a_builtin(
    error: Exception, builtins: tuple[type[Exception], ...]
) -> None:
    assert isinstance(error, FlowWeaverError)
    for builtin in builtins:
        assert isinstance(error, builtin)


def test_messages_name_the_culprit() -> None:
    assert (
        str(DuplicateTaskError("load", "etl")) == "workflow 'etl' already has a task named 'load'"
    )
    assert str(UnknownDependencyError("load", "xform", "etl")) == (
        "task 'load' depends on 'xform', which is not a task of workflow 'etl'"
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


@pytest.mark.parametrize(
    "error",
    [
        TaskTimeoutError("slow", 0.5),
        MissingDependencyError("DaskExecutor", "dask", "distributed"),
        TransferError("load", "TypeError: cannot pickle 'lock'", destination="the cluster"),
        ResultUnavailableError("load", "its Dask client is closed"),
    ],
)
def test_errors_that_cross_processes_survive_pickling(error: FlowWeaverError) -> None:
    # A worker process raises them, or they travel with a failed task's outcome.
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy)) == (type(error), str(error))
    assert vars(copy) == vars(error)
