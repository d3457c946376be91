"""Every exception flowweaver raises, in one place.

The hierarchy::

    FlowWeaverError
    ├── DefinitionError (ValueError)         how a workflow or stage was built
    │   ├── ConfigurationError (TypeError)   a constructor argument is invalid
    │   ├── DuplicateTaskError               .task_name
    │   ├── UnknownDependencyError           .task_name, .dependency
    │   ├── CycleError                       .cycle (the path, first node repeated last)
    │   └── BindingError (TypeError)         a function cannot receive its upstream results
    ├── UnknownTaskError (KeyError)          .task_name: a lookup by a name the workflow lacks
    ├── MissingDependencyError (ImportError) .extra: an optional extra is not installed
    ├── ExecutionError (RuntimeError)        something went wrong while running
    │   ├── TaskFailedError                  .task_name, .attempts, __cause__ = original error
    │   ├── WorkflowFailedError (ExceptionGroup of TaskFailedError)  .failures
    │   ├── EventLoopError                   a sync entry point was called inside a running loop
    │   ├── SerializationError (TypeError)   .task_name: a call cannot be sent to a cluster
    │   └── ResultUnavailableError           .task_name: a result kept on a cluster is gone
    └── TaskTimeoutError (TimeoutError)      one attempt ran past the task's timeout

Definition errors subclass ``ValueError`` and run failures ``RuntimeError`` so code written
against the seeds (``except ValueError`` / ``except RuntimeError``) keeps working. Details live in
typed attributes, never only in ``args``; messages are lowercase and quote the offending value
with ``repr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "BindingError",
    "ConfigurationError",
    "CycleError",
    "DefinitionError",
    "DuplicateTaskError",
    "EventLoopError",
    "ExecutionError",
    "FlowWeaverError",
    "MissingDependencyError",
    "ResultUnavailableError",
    "SerializationError",
    "TaskFailedError",
    "TaskTimeoutError",
    "UnknownDependencyError",
    "UnknownTaskError",
    "WorkflowFailedError",
]


class FlowWeaverError(Exception):
    """Root of every error flowweaver raises on purpose."""


class DefinitionError(FlowWeaverError, ValueError):
    """A workflow, task or stage was defined in a way that cannot run."""


class ConfigurationError(DefinitionError, TypeError):
    """A constructor or function argument has a bad value or type.

    It is both a ``ValueError`` and a ``TypeError``: a negative retry count and a retry count
    given as a string are the same mistake to a caller, who may catch either.
    """


class DuplicateTaskError(DefinitionError):
    """A task name is already taken in the workflow."""

    def __init__(self, task_name: str, workflow: str) -> None:
        super().__init__(f"workflow {workflow!r} already has a task named {task_name!r}")
        self.task_name = task_name
        self.workflow = workflow


class UnknownDependencyError(DefinitionError):
    """A task depends on a name that the workflow does not hold."""

    def __init__(self, task_name: str, dependency: str, workflow: str) -> None:
        super().__init__(
            f"task {task_name!r} depends on {dependency!r}, "
            f"which is not a task of workflow {workflow!r}"
        )
        self.task_name = task_name
        self.dependency = dependency
        self.workflow = workflow


class CycleError(DefinitionError):
    """The dependencies form a cycle.

    Attributes:
        cycle: The nodes of one cycle in dependency order, the first repeated at the end,
            e.g. ``("a", "b", "a")`` when ``a`` depends on ``b`` and ``b`` on ``a``.
    """

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle: tuple[str, ...] = tuple(cycle)
        super().__init__("dependency cycle: " + " -> ".join(repr(n) for n in self.cycle))


class BindingError(DefinitionError, TypeError):
    """A task's function cannot accept the results of its upstream tasks."""

    def __init__(self, task_name: str, reason: str) -> None:
        super().__init__(f"task {task_name!r} cannot receive its inputs: {reason}")
        self.task_name = task_name
        self.reason = reason


class UnknownTaskError(FlowWeaverError, KeyError):
    """A task was looked up by a name the workflow (or run) does not hold."""

    def __init__(self, task_name: str, workflow: str) -> None:
        super().__init__(f"workflow {workflow!r} has no task named {task_name!r}")
        self.task_name = task_name
        self.workflow = workflow

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0])


class MissingDependencyError(FlowWeaverError, ImportError):
    """A feature needs an optional extra that is not installed.

    Attributes:
        extra: The extra to install (``pip install 'flowweaver[<extra>]'``).
        feature: What needed it.
    """

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the {extra!r} extra: pip install 'flowweaver[{extra}]'", name=module
        )
        self.feature = feature
        self.extra = extra

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.feature, self.extra, self.name))


class ExecutionError(FlowWeaverError, RuntimeError):
    """Something failed while a run was in progress."""


class TaskTimeoutError(FlowWeaverError, TimeoutError):
    """One attempt of a task ran longer than its ``timeout``.

    A thread cannot be killed: for a sync task on a thread the call goes on in the background and
    its late result is discarded. Async tasks are cancelled; process tasks are terminated.
    """

    def __init__(self, task_name: str, timeout: float) -> None:
        super().__init__(f"task {task_name!r} timed out after {timeout!r} s")
        self.task_name = task_name
        self.timeout = timeout

    def __reduce__(self) -> tuple[object, ...]:
        # An async task times out inside a worker process and comes back pickled.
        return (type(self), (self.task_name, self.timeout))


class TaskFailedError(ExecutionError):
    """A task failed after all of its attempts.

    Attributes:
        task_name: The task that failed.
        attempts: How many attempts were made (1 when it was not retried).
        __cause__: The exception of the last attempt.
    """

    def __init__(self, task_name: str, attempts: int, cause: BaseException) -> None:
        noun = "attempt" if attempts == 1 else "attempts"
        super().__init__(
            f"task {task_name!r} failed after {attempts} {noun}: {type(cause).__name__}: {cause}"
        )
        self.task_name = task_name
        self.attempts = attempts
        self.__cause__ = cause

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the typed attributes when the error crosses a process boundary.
        cause = self.__cause__ if self.__cause__ is not None else RuntimeError("unknown")
        return (type(self), (self.task_name, self.attempts, cause))


class WorkflowFailedError(ExceptionGroup[TaskFailedError], ExecutionError):
    """A workflow run ended with one or more failed tasks.

    It is an ``ExceptionGroup`` of every :class:`TaskFailedError` of the run (so ``except*``
    works) and a ``RuntimeError`` (so the seeds' ``except RuntimeError`` works). ``__cause__`` is
    the first failure's original exception, so a plain traceback shows where it started.

    Attributes:
        workflow: The workflow's name.
        failures: The failed tasks' errors, in the order they failed.
    """

    workflow: str

    def __new__(cls, workflow: str, failures: Sequence[TaskFailedError]) -> Self:
        self = super().__new__(cls, _failure_summary(workflow, failures), failures)
        self.workflow = workflow
        return self

    def __init__(self, workflow: str, failures: Sequence[TaskFailedError]) -> None:
        super().__init__(_failure_summary(workflow, failures), failures)
        self.__cause__ = failures[0].__cause__

    @property
    def failures(self) -> tuple[TaskFailedError, ...]:
        # Only TaskFailedErrors are ever put in (derive() keeps the type), never nested groups.
        return self.exceptions  # type: ignore[return-value]

    def derive(self, excs: Sequence[TaskFailedError]) -> WorkflowFailedError:  # type: ignore[override]
        # ``except*`` splits a group through derive(); keep the type and the workflow name.
        return WorkflowFailedError(self.workflow, excs)


def _failure_summary(workflow: str, failures: Sequence[TaskFailedError]) -> str:
    names = ", ".join(repr(f.task_name) for f in failures)
    noun = "task" if len(failures) == 1 else "tasks"
    return f"workflow {workflow!r} failed: {len(failures)} {noun} failed ({names})"


class EventLoopError(ExecutionError):
    """A blocking entry point was called from inside a running event loop."""


class SerializationError(ExecutionError, TypeError):
    """A task's call (its function or arguments) cannot be serialised to go to a cluster.

    The attempt fails with this error; ``__cause__`` is what the serialiser raised.
    """

    def __init__(self, task_name: str, reason: str) -> None:
        super().__init__(f"task {task_name!r} cannot be sent to the cluster: {reason}")
        self.task_name = task_name
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.task_name, self.reason))


class ResultUnavailableError(ExecutionError):
    """A task completed, but its result, kept on a cluster, can no longer be fetched.

    ``__cause__`` is what the cluster reported (e.g. the client was closed).
    """

    def __init__(self, task_name: str, reason: str) -> None:
        super().__init__(f"the result of task {task_name!r} cannot be fetched: {reason}")
        self.task_name = task_name
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.task_name, self.reason))
