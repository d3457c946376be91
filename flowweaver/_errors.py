"""Every exception flowweaver raises, in one place.

The hierarchy::

    FlowWeaverError
    ├── DefinitionError (ValueError)         how a workflow or stage was built
    │   ├── ConfigurationError (TypeError)   a constructor argument is invalid
    │   │   └── StageValidationError         .stage, .field: a pipeline Stage is misconfigured
    │   │                                    (also a PipelineError, as in AntFlow)
    │   ├── DuplicateTaskError               .task_name
    │   │   └── TaskNameCollisionError       .functions: two different tasks share a name
    │   ├── UnknownDependencyError           .task_name, .dependency
    │   ├── CycleError                       .cycle (the path, first node repeated last)
    │   │   └── SubflowCycleError            .cycle of workflow names: a graph would run inside
    │   │                                    itself through subflows
    │   ├── MapDefinitionError               .task_name: a mapped task cannot map as declared
    │   └── BindingError (TypeError)         a function cannot receive its upstream results
    ├── UnknownTaskError (KeyError)          .task_name: a lookup by a name the workflow lacks
    ├── UnknownRunError (KeyError)           .name, .run_id: no such run in a store's history
    ├── MissingDependencyError (ImportError) .extra: an optional extra is not installed
    ├── ExecutionError (RuntimeError)        something went wrong while running
    │   ├── TaskFailedError                  .task_name, .attempts, __cause__ = original error
    │   │   ├── ElementFailedError           .index: one element of a mapped task failed
    │   │   └── MappedTaskFailedError        .element_failures: every failed element
    │   ├── MapInputError                    .task_name, .upstream, .value: cannot be mapped
    │   │   ├── NotIterableError (TypeError) the mapped-over result is not a sequence of
    │   │   │                                elements (a str, bytes, a mapping, a number …)
    │   │   └── MapLengthError (ValueError)  .lengths: zipped upstreams differ in length
    │   ├── WorkflowFailedError (ExceptionGroup of TaskFailedError)  .failures
    │   ├── EventLoopError                   a sync entry point was called inside a running loop
    │   ├── TransferError (pickle.PicklingError, TypeError)  .task_name: a call cannot cross
    │   │                                    to a worker process or a cluster (or its result
    │   │                                    cannot come back)
    │   ├── ResultUnavailableError           .task_name: a result kept on a cluster is gone
    │   │   └── ResultReleasedError          a run with ``keep_results=`` released it
    │   ├── RejectedResultError              .task_name, .value: ``retry_if_result`` counted a
    │   │                                    returned value as a failure
    │   ├── WorkerDiedError                  .task_name, .exitcode: its worker process died
    │   │   └── WorkerStartError             .main: workers cannot start (a script without
    │   │                                    the ``if __name__ == "__main__":`` guard)
    │   ├── ExecutorShutdownError            a call was submitted to a pool that was shut down
    │   └── PipelineError                    a pipeline was misused (no stages, started twice, …)
    │       ├── StageValidationError         (see above: both a definition and a pipeline error)
    │       └── ItemCancelledError           .item_id, .stage: the pipeline stopped before the item
    │                                        finished (shutdown, cancellation, stream() break)
    ├── TaskTimeoutError (TimeoutError)      one attempt ran past the task's timeout
    └── StateError                           durable state could not be read, written or trusted
        ├── StateCorruptError (ValueError)   .path, .reason: unreadable or truncated store
        ├── StateVersionError (ValueError)   .path, .found, .supported: written by a newer version
        ├── StateLockedError (TimeoutError)  .path, .timeout: another writer held the lock too long
        │   └── RunLockedError               .name, .run_id, .holder: another run owns this run id
        ├── StateAccessError (OSError)       .path, .reason: cannot open/write it, or it is closed
        ├── SerializationError (TypeError)   .type_name, .reason, .task_name / .item_id: no stored
        │                                    form
        └── StateMismatchError (RuntimeError)  .task_name: code or inputs changed (strict resume)
            └── ItemMismatchError            .item_id, .pipeline: a pipeline item's stage code or
                                             input changed (strict resume of a pipeline)

Definition errors subclass ``ValueError`` and run failures ``RuntimeError`` so code written
against the seeds (``except ValueError`` / ``except RuntimeError``) keeps working. An optional
extra that a caller explicitly asks for and that is not installed (``DaskExecutor``, a
dashboard with ``use_rich=True``) raises :class:`MissingDependencyError`, an ``ImportError``;
the one exception, as specified, is ``AsyncExecutor(use_uvloop=True)``, which logs a warning
and runs on asyncio. Details live in
typed attributes, never only in ``args``; messages are lowercase and quote the offending value
with ``repr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

# pickle.PicklingError *is* _pickle's (the accelerator's) class; importing only the accelerator
# keeps pickle.py (and struct) out of ``import flowweaver``.
try:
    from _pickle import PicklingError
except ImportError:  # an interpreter without the accelerator
    from pickle import PicklingError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._run import WorkflowRun

__all__ = [
    "BindingError",
    "ConfigurationError",
    "CycleError",
    "DefinitionError",
    "DuplicateTaskError",
    "ElementFailedError",
    "EventLoopError",
    "ExecutionError",
    "ExecutorShutdownError",
    "FlowWeaverError",
    "ItemCancelledError",
    "ItemMismatchError",
    "MapDefinitionError",
    "MapInputError",
    "MapLengthError",
    "MappedTaskFailedError",
    "MissingDependencyError",
    "NotIterableError",
    "PipelineError",
    "RejectedResultError",
    "ResultReleasedError",
    "ResultUnavailableError",
    "RunLockedError",
    "SerializationError",
    "StageValidationError",
    "StateAccessError",
    "StateCorruptError",
    "StateError",
    "StateLockedError",
    "StateMismatchError",
    "StateVersionError",
    "SubflowCycleError",
    "TaskFailedError",
    "TaskNameCollisionError",
    "TaskTimeoutError",
    "TransferError",
    "UnknownDependencyError",
    "UnknownRunError",
    "UnknownTaskError",
    "WorkerDiedError",
    "WorkerStartError",
    "WorkflowFailedError",
]


#: SerializationError's "no item" marker (None is a valid item id).
_NO_ITEM: object = object()


class FlowWeaverError(Exception):
    """Root of every error flowweaver raises on purpose.

    Every flowweaver error pickles with its message, its typed attributes and its
    ``__cause__`` — errors travel from worker processes and Dask workers back to the run.
    """

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt without calling __init__, whose arguments differ per class: the message
        # (args) and the typed attributes are what callers read.
        state = dict(self.__dict__)
        if isinstance(self, ImportError):  # name and path live outside __dict__
            state.update(name=self.name, path=self.path)
        return (_rebuild, (type(self), self.args, state, self.__cause__))


def _rebuild(
    cls: type[FlowWeaverError],
    args: tuple[object, ...],
    state: dict[str, object],
    cause: BaseException | None,
) -> FlowWeaverError:
    error = cls.__new__(cls, *args)
    BaseException.__init__(error, *args)  # OSError subclasses only set args in __init__
    for name, value in state.items():
        setattr(error, name, value)
    error.__cause__ = cause
    return error


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
        super().__init__(f"task {task_name!r} already exists in workflow {workflow!r}")
        self.task_name = task_name
        self.workflow = workflow


class TaskNameCollisionError(DuplicateTaskError):
    """Two different tasks with the same name were put in one workflow (never merged).

    Attributes:
        task_name: The shared name.
        functions: How each of the two tasks' functions is called (``module.qualname``).
    """

    def __init__(self, task_name: str, workflow: str, first: str, second: str) -> None:
        DefinitionError.__init__(
            self,
            f"a different task named {task_name!r} already exists in workflow {workflow!r} "
            f"(functions {first} and {second}); rename one with @task(name=...)",
        )
        self.task_name = task_name
        self.workflow = workflow
        self.functions = (first, second)


class UnknownDependencyError(DefinitionError):
    """A task depends on a name that the workflow does not hold."""

    def __init__(self, task_name: str, dependency: str, workflow: str) -> None:
        super().__init__(
            f"task {task_name!r} depends on {dependency!r}, "
            f"which does not exist in workflow {workflow!r}"
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

    def __init__(self, cycle: Sequence[str], *, written: str | None = None) -> None:
        self.cycle: tuple[str, ...] = tuple(cycle)
        if written is None:
            message = "dependency cycle: " + " -> ".join(repr(n) for n in self.cycle)
        else:  # reported where the user wrote it: in the order of the operator (``>>``)
            flow = f" {written} ".join(repr(n) for n in reversed(self.cycle))
            message = f"{flow} would close a dependency cycle"
        super().__init__(message)


class MapDefinitionError(DefinitionError):
    """A mapped task cannot map as it was declared (``map_over`` names no upstream of it,
    ``.map()`` without a name on a task with several upstreams, …).

    Attributes:
        task_name: The mapped task.
    """

    def __init__(self, task_name: str, reason: str) -> None:
        super().__init__(f"task {task_name!r}: {reason}")
        self.task_name = task_name


class SubflowCycleError(CycleError):
    """A workflow would run inside itself: it is a subflow of one of its own subflows.

    Attributes:
        cycle: Workflow names from the outer workflow down to itself again, e.g.
            ``("outer", "inner", "outer")`` when ``inner`` contains ``outer``.
    """

    def __init__(self, cycle: Sequence[str]) -> None:
        super().__init__(cycle)
        self.args = (
            f"subflow cycle: workflow {self.cycle[0]!r} would run inside itself: "
            + " -> ".join(repr(n) for n in self.cycle),
        )


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


class UnknownRunError(FlowWeaverError, KeyError):
    """A store's run history has no run of that name and id."""

    def __init__(self, name: str, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} of {name!r} is recorded in this store")
        self.name = name
        self.run_id = run_id

    def __str__(self) -> str:
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


class ExecutionError(FlowWeaverError, RuntimeError):
    """Something failed while a run was in progress."""


class TaskTimeoutError(FlowWeaverError, TimeoutError):
    """One attempt of a task ran longer than its ``timeout``.

    Async tasks are cancelled. A running sync call is abandoned: it goes on in the background and
    its late result is discarded (a thread cannot be killed). Only a workflow run on
    :class:`ProcessExecutor` stops one for real, by terminating its worker process; a pipeline
    never kills a process (see ``Stage.task_timeout``).
    """

    def __init__(self, task_name: str, timeout: float) -> None:
        super().__init__(f"task {task_name!r} timed out after {timeout!r} s")
        self.task_name = task_name
        self.timeout = timeout


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


class ElementFailedError(TaskFailedError):
    """One element of a mapped task failed after all of its attempts.

    Attributes:
        task_name: The mapped task.
        index: The element's position in what the task maps over (0 for the first).
        attempts: How many attempts the element made.
        __cause__: The exception of its last attempt.
    """

    def __init__(self, task_name: str, index: int, attempts: int, cause: BaseException) -> None:
        super().__init__(f"{task_name}[{index}]", attempts, cause)
        self.task_name = task_name
        self.index = index


#: How many element failures a MappedTaskFailedError's message lists (all are in the attribute).
_SHOWN_ELEMENTS = 3


class MappedTaskFailedError(TaskFailedError):
    """A mapped task failed because some of its elements failed for good.

    Attributes:
        task_name: The mapped task.
        element_failures: Every element that failed, in the order they failed (each with its
            ``index``, ``attempts`` and ``__cause__``).
        attempts: Attempts of all elements together.
        __cause__: The first element failure.
    """

    def __init__(
        self, task_name: str, element_failures: Sequence[ElementFailedError], total: int | None
    ) -> None:
        failures = tuple(element_failures)
        shown = "; ".join(
            f"[{f.index}] {type(f.__cause__).__name__}: {f.__cause__}"
            for f in failures[:_SHOWN_ELEMENTS]
        )
        more = len(failures) - _SHOWN_ELEMENTS
        if more > 0:
            shown += f"; and {more} more"
        of = "" if total is None else f" of {total}"
        noun = "element" if len(failures) == 1 and total is None else "elements"
        ExecutionError.__init__(
            self, f"task {task_name!r} failed: {len(failures)}{of} {noun} failed ({shown})"
        )
        self.task_name = task_name
        self.attempts = sum(f.attempts for f in failures)
        self.element_failures = failures
        self.__cause__ = failures[0] if failures else None


class MapInputError(ExecutionError):
    """What a mapped task was given to map over cannot be mapped.

    The task fails with it as ``__cause__`` (no retry: the input will not change).

    Attributes:
        task_name: The mapped task.
        upstream: The upstream task whose result it is (or the names of the zipped ones).
        value: The offending value.
    """

    def __init__(self, task_name: str, upstream: str, value: object, reason: str) -> None:
        super().__init__(f"task {task_name!r} cannot map over {upstream!r}: {reason}")
        self.task_name = task_name
        self.upstream = upstream
        self.value = value


class NotIterableError(MapInputError, TypeError):
    """The mapped-over result is not a collection of elements.

    A ``str``, ``bytes`` or ``bytearray`` counts as one value, not as its characters, and a
    mapping is refused as ambiguous (map over ``.items()`` or ``.keys()`` instead).
    """


class MapLengthError(MapInputError, ValueError):
    """Zipped upstreams of a mapped task have different lengths.

    Attributes:
        lengths: ``{upstream name: length}`` (a length is the count seen so far when an
            upstream is a generator that ended early).
    """

    def __init__(self, task_name: str, lengths: dict[str, int]) -> None:
        shown = ", ".join(f"{name!r} has {n}" for name, n in lengths.items())
        super().__init__(
            task_name,
            ", ".join(lengths),
            lengths,
            f"zipped upstreams must have the same length ({shown})",
        )
        self.lengths = dict(lengths)


class WorkflowFailedError(ExceptionGroup[TaskFailedError], ExecutionError):
    """A workflow run ended with one or more failed tasks.

    It is an ``ExceptionGroup`` of every :class:`TaskFailedError` of the run (so ``except*``
    works) and a ``RuntimeError`` (so the seeds' ``except RuntimeError`` works). ``__cause__`` is
    the first failure's original exception, so a plain traceback shows where it started.

    Attributes:
        workflow: The workflow's name.
        failures: The failed tasks' errors, in the order they failed.
        run: The finished :class:`~flowweaver.WorkflowRun` (statuses, errors, timings, and
            ``run.results`` of the tasks that completed, e.g. the branches that finished
            under ``failure_policy="continue"``); ``None`` once the error was pickled.
    """

    workflow: str
    run: WorkflowRun | None

    def __new__(
        cls,
        workflow: str,
        failures: Sequence[TaskFailedError],
        run: WorkflowRun | None = None,
    ) -> Self:
        self = super().__new__(cls, _failure_summary(workflow, failures), failures)
        self.workflow = workflow
        self.run = run
        return self

    def __init__(
        self,
        workflow: str,
        failures: Sequence[TaskFailedError],
        run: WorkflowRun | None = None,
    ) -> None:
        super().__init__(_failure_summary(workflow, failures), failures)
        self.__cause__ = failures[0].__cause__

    @property
    def failures(self) -> tuple[TaskFailedError, ...]:
        # Only TaskFailedErrors are ever put in (derive() keeps the type), never nested groups.
        return self.exceptions  # type: ignore[return-value]

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.workflow, list(self.failures)))

    def derive(self, excs: Sequence[TaskFailedError]) -> WorkflowFailedError:  # type: ignore[override]
        # ``except*`` splits a group through derive(); keep the type and the workflow name.
        return WorkflowFailedError(self.workflow, excs, self.run)


def _failure_summary(workflow: str, failures: Sequence[TaskFailedError]) -> str:
    names = ", ".join(repr(f.task_name) for f in failures)
    noun = "task" if len(failures) == 1 else "tasks"
    return f"workflow {workflow!r} failed: {len(failures)} {noun} failed ({names})"


class EventLoopError(ExecutionError):
    """A blocking entry point was called from inside a running event loop."""


class TransferError(ExecutionError, PicklingError, TypeError):
    """A call cannot be sent to where it should run (a worker process, a cluster), or its
    outcome cannot come back.

    It is a ``pickle.PicklingError`` and a ``TypeError`` too (Python reports "cannot pickle"
    as either), so code catching those catches it.

    Attributes:
        task_name: The task (or, for ``submit``, the function) concerned.
        detail: What could not be serialised, and why.
        returning: False when the call could not be sent, True when its result could not
            come back.
        destination: Where the call was going ("a worker process", "the cluster").
    """

    def __init__(
        self,
        task_name: str,
        detail: str,
        returning: bool = False,
        destination: str = "a worker process",
        hint: str = "run it on ThreadedExecutor (executor='thread') instead",
    ) -> None:
        if returning:
            message = (
                f"task {task_name!r} ran in {destination} but its outcome cannot be sent "
                f"back: {detail}"
            )
        else:
            message = f"task {task_name!r} cannot be sent to {destination}: {detail}; {hint}"
        super().__init__(message)
        self.task_name = task_name
        self.detail = detail
        self.returning = returning
        self.destination = destination
        self.hint = hint


class WorkerDiedError(ExecutionError):
    """The worker process running a task ended before the task did (killed, crashed, exited).

    Attributes:
        task_name: The task that was running.
        exitcode: The process's exit code (negative: killed by that signal), or None.
    """

    def __init__(self, task_name: str, exitcode: int | None) -> None:
        super().__init__(
            f"the worker process running task {task_name!r} died (exit code {exitcode!r})"
        )
        self.task_name = task_name
        self.exitcode = exitcode


class WorkerStartError(WorkerDiedError):
    """Worker processes cannot start: each one re-imports the main module, and that import
    starts a run of its own (a script that runs a workflow on ``executor="process"`` without
    the ``if __name__ == "__main__":`` guard). Never retried: every worker would do the same.

    Attributes:
        task_name: The task whose call found no worker.
        exitcode: The exit status of the worker that said so.
        main: The main module's file, as the parent knows it (None if it has none).
    """

    def __init__(self, task_name: str, exitcode: int | None, main: str | None) -> None:
        script = "the main module" if main is None else f"the main module {main!r}"
        ExecutionError.__init__(
            self,
            f"worker processes cannot start (task {task_name!r}): each re-imports {script}, "
            "which starts a run when imported; put the code that runs workflows under "
            "'if __name__ == \"__main__\":'",
        )
        self.task_name = task_name
        self.exitcode = exitcode
        self.main = main


class StateError(FlowWeaverError):
    """Durable state (a :class:`~flowweaver.StateStore`) could not be read, written or trusted.

    Every subclass also derives from the built-in a caller would catch for the same problem
    with a plain file. A state error never discards what a store has committed: the store is
    left exactly as it was.
    """


class StateCorruptError(StateError, ValueError):
    """A state store's file is not readable as one: truncated, damaged, or not a store at all.

    Attributes:
        path: The file.
        reason: What is wrong with it.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"state store {path!r} is corrupt: {reason}")
        self.path = path
        self.reason = reason


class StateVersionError(StateError, ValueError):
    """A state store was written by a newer flowweaver (its schema version is unknown here).

    Attributes:
        path: The file.
        found: The version the file carries.
        supported: The newest version this flowweaver reads.
    """

    def __init__(self, path: str, found: object, supported: int) -> None:
        super().__init__(
            f"state store {path!r} has schema version {found!r}; this flowweaver reads "
            f"versions up to {supported} (upgrade flowweaver to open it)"
        )
        self.path = path
        self.found = found
        self.supported = supported


class StateLockedError(StateError, TimeoutError):
    """Another writer held a state store's lock for longer than the store's ``timeout``.

    Attributes:
        path: The file.
        timeout: Seconds waited before giving up.
    """

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(
            f"state store {path!r} is locked by another writer; gave up after {timeout!r} s"
        )
        self.path = path
        self.timeout = timeout


class RunLockedError(StateLockedError):
    """A durable run is owned by another run that is in progress (the same workflow or
    pipeline and run id, on the same store): two owners would both execute every task.

    Attributes:
        path: The store.
        name: The workflow's (or pipeline's) name.
        run_id: The run id.
        holder: Who owns it (``"process 4242 on host 'web-1' since 2026-06-01 12:00:00 UTC"``),
            or None when the owner has not said yet.
        timeout: Seconds waited for the owner to finish (0: did not wait).
    """

    def __init__(
        self,
        path: str,
        name: str,
        run_id: str,
        holder: str | None,
        timeout: float,
        kind: str = "workflow",
    ) -> None:
        waited = f"; gave up after {timeout!r} s" if timeout else ""
        StateError.__init__(
            self,
            f"{kind} {name!r} run {run_id!r} is already in progress, owned by "
            f"{holder or 'another run'} (store {path!r}){waited}",
        )
        self.path = path
        self.timeout = timeout
        self.name = name
        self.run_id = run_id
        self.holder = holder


class StateAccessError(StateError, OSError):
    """A state store could not be opened or written (permissions, disk full), or is closed.

    Attributes:
        path: The file.
        reason: What the operating system or SQLite said.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"state store {path!r} cannot be used: {reason}")
        self.path = path
        self.reason = reason


class SerializationError(StateError, TypeError):
    """A value has no stored form, or a stored value cannot be rebuilt.

    Attributes:
        type_name: The value's type (``module.QualName``; builtins by bare name).
        reason: Why.
        task_name: The task whose result it is, when there is one.
        item_id: The pipeline item whose result (or id) it is, when there is one (else None).
        restoring: True when a stored value could not be rebuilt (reading), False when a value
            could not be stored (writing).
    """

    def __init__(
        self,
        type_name: str,
        reason: str,
        *,
        task_name: str | None = None,
        restoring: bool = False,
        item_id: object = _NO_ITEM,
    ) -> None:
        if task_name is not None:
            owner = f"task {task_name!r}: "
        elif item_id is not _NO_ITEM:
            owner = f"item {item_id!r}: "
        else:
            owner = ""
        verb = "restore" if restoring else "store"
        super().__init__(f"{owner}cannot {verb} a value of type {type_name!r}: {reason}")
        self.type_name = type_name
        self.reason = reason
        self.task_name = task_name
        self.item_id = None if item_id is _NO_ITEM else item_id
        self.restoring = restoring

    def for_task(self, task_name: str) -> SerializationError:
        """The same error, naming the task whose value it is."""
        error = SerializationError(
            self.type_name, self.reason, task_name=task_name, restoring=self.restoring
        )
        error.__cause__ = self.__cause__
        return error

    def for_item(self, item_id: object) -> SerializationError:
        """The same error, naming the pipeline item whose value it is."""
        error = SerializationError(
            self.type_name, self.reason, restoring=self.restoring, item_id=item_id
        )
        error.__cause__ = self.__cause__
        return error


class StateMismatchError(StateError, RuntimeError):
    """Resuming with ``on_changed="error"``: a task's code or inputs changed since it committed.

    Attributes:
        task_name: The task (None for a pipeline item: see :class:`ItemMismatchError`).
        workflow: The workflow (for a pipeline item, the pipeline's name).
        run_id: The run being resumed.
    """

    task_name: str | None

    def __init__(self, task_name: str, workflow: str, run_id: str) -> None:
        super().__init__(
            f"task {task_name!r} of workflow {workflow!r} changed (code or inputs) since run "
            f"{run_id!r} committed its result"
        )
        self.task_name = task_name
        self.workflow = workflow
        self.run_id = run_id


class ItemMismatchError(StateMismatchError):
    """Resuming a pipeline with ``on_changed="error"``: an item's committed result was made by
    other stage code, or from another input value, than this run would use.

    Attributes:
        item_id: The item's id.
        pipeline: The pipeline's name (also in ``workflow``; ``task_name`` is None).
        run_id: The run being resumed.
    """

    def __init__(self, item_id: object, pipeline: str, run_id: str) -> None:
        # Not StateMismatchError.__init__: its message speaks of a task.
        StateError.__init__(
            self,
            f"item {item_id!r} of pipeline {pipeline!r} changed (stage code or input) since run "
            f"{run_id!r} committed its result",
        )
        self.item_id = item_id
        self.pipeline = pipeline
        self.task_name = None
        self.workflow = pipeline
        self.run_id = run_id


class ExecutorShutdownError(ExecutionError):
    """A call was submitted to an executor's pool after it was shut down."""


class PipelineError(ExecutionError):
    """A pipeline was used in a way it cannot honour: no stages, started while running, fed
    after a shutdown."""


class StageValidationError(ConfigurationError, PipelineError):
    """A pipeline :class:`~flowweaver.Stage` (or the list of stages) is misconfigured.

    A ``ValueError`` and ``TypeError`` (a bad argument) and, as in every AntFlow, a
    :class:`PipelineError` (so also a ``RuntimeError``): ``except PipelineError`` written for
    AntFlow keeps catching it.

    Attributes:
        stage: The offending stage's name (None when the name itself is the problem).
        field: The offending field (``"workers"``, ``"tasks"``, ``"name"`` …).
    """

    def __init__(self, message: str, stage: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.field = field


class ItemCancelledError(PipelineError):
    """The pipeline stopped before this item finished: it is recorded as a failure with this error.

    Attributes:
        item_id: The item's id.
        stage: The stage the item was in (or waiting to enter) when the pipeline stopped.
    """

    def __init__(self, item_id: object, stage: str) -> None:
        super().__init__(
            f"item {item_id!r} was cancelled in stage {stage!r}: "
            "the pipeline stopped before it finished"
        )
        self.item_id = item_id
        self.stage = stage


class RejectedResultError(ExecutionError):
    """A call returned a value that its ``retry_if_result`` counts as a failure.

    It is retried like an exception, while attempts are left (``retry_on`` and ``retry_if``
    are about exceptions and are not asked); when none is left it is the final failure.

    Attributes:
        task_name: The task (or stage task, or pool call) that returned it.
        value: The value returned.
    """

    def __init__(self, task_name: str, value: object) -> None:
        shown = repr(value)
        if len(shown) > _SHOWN:
            shown = shown[: _SHOWN - 3] + "..."
        super().__init__(f"task {task_name!r} returned a result counted as a failure: {shown}")
        self.task_name = task_name
        self.value = value


#: How much of a rejected value's repr a message shows.
_SHOWN = 200


class ResultUnavailableError(ExecutionError):
    """A task completed, but its result, kept on a cluster, can no longer be fetched.

    ``__cause__`` is what the cluster reported (e.g. the client was closed).
    """

    def __init__(self, task_name: str, reason: str) -> None:
        super().__init__(f"the result of task {task_name!r} cannot be fetched: {reason}")
        self.task_name = task_name
        self.reason = reason


class ResultReleasedError(ResultUnavailableError):
    """A run with ``keep_results=`` let go of this result once the last task that reads it
    had ended, as asked; name the task in ``keep_results`` to keep it."""

    def __init__(self, task_name: str) -> None:
        super().__init__(
            task_name,
            "the run released it once the tasks that read it had ended "
            f"(keep it with keep_results=[..., {task_name!r}])",
        )
