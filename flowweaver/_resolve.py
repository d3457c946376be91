"""What an ``executor=`` argument means, and the seed API's one way up to the executors.

Everything that accepts an executor — :meth:`Workflow.execute`, :meth:`DAG.run`, the CLI —
turns it into one here (:func:`resolve_executor`): a flowweaver executor as it is, a name
(``"sequential"``, ``"thread"``, ``"async"``, ``"process"``) as a fresh executor, a Dask client
in a :class:`~flowweaver.DaskExecutor`, any other ``concurrent.futures`` pool in a
:class:`~flowweaver.PoolExecutor`.

The model layer (``Task``, ``Workflow``) knows nothing of executors, except that the seed API
lets a model object run itself (``task.execute()``, ``workflow.execute()``): those methods call
:func:`execute`, :func:`execute_async` and :func:`execute_task` here, lazily, the only imports
that point up the layers (``tests/test_layers.py``, ``ALLOWED``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError, WorkflowFailedError
from ._executors import (
    ExecutorLike,
    PoolExecutor,
    SequentialExecutor,
    ThreadedExecutor,
    WorkflowRunner,
    dask_kind,
)
from ._workflow import Workflow

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._options import RunOptions
    from ._run import WorkflowRun
    from ._task import Task

__all__ = [
    "EXECUTOR_NAMES",
    "ExecutorLike",
    "as_executor",
    "execute",
    "execute_async",
    "execute_task",
    "execute_task_async",
    "resolve_executor",
]

#: The executor names accepted wherever an executor is (``run``, ``execute``, the CLI).
EXECUTOR_NAMES = ("sequential", "thread", "async", "process")


def as_executor(executor: ExecutorLike | None) -> WorkflowRunner:
    """What ``Workflow.execute`` runs on: ours as they are, a Dask client in a
    :class:`DaskExecutor`, a foreign pool in a :class:`PoolExecutor`.

    Raises:
        ConfigurationError: ``executor`` can neither run a workflow nor ``submit`` a call.
    """
    if executor is None:
        return SequentialExecutor()
    if isinstance(executor, WorkflowRunner):
        return executor
    if dask_kind(executor) == "Client":
        from ._dask import DaskExecutor  # loaded only for a Dask client: see _public

        return DaskExecutor(executor)  # type: ignore[arg-type]  # it is a distributed.Client
    if callable(getattr(executor, "submit", None)):
        return PoolExecutor(executor)
    raise ConfigurationError(
        f"expected a flowweaver executor or a concurrent.futures.Executor, got {executor!r}"
    )


def resolve_executor(
    executor: str | ExecutorLike | None, max_workers: int | None = None
) -> tuple[WorkflowRunner, Callable[[], None] | None]:
    """The executor a name or object means, and how to release it if we made it.

    ``"sequential"``, ``"thread"``, ``"async"`` and ``"process"`` make a fresh executor (with
    ``max_workers``); a pool made here is returned with its ``shutdown`` so the caller shuts
    it down after the run. Anything else goes through :func:`as_executor`.

    Raises:
        ConfigurationError: An unknown name, or an object that is not an executor.
    """
    if not isinstance(executor, str):
        return as_executor(executor), None
    if executor == "sequential":
        return SequentialExecutor(), None
    if executor == "thread":
        threaded = ThreadedExecutor(max_workers)
        return threaded, threaded.shutdown
    if executor == "async":
        from ._async import AsyncExecutor  # asyncio loads only for a run that asks for it

        return AsyncExecutor(max_workers=max_workers), None
    if executor == "process":
        from ._process import ProcessExecutor

        processes = ProcessExecutor(max_workers)
        return processes, processes.shutdown
    raise ConfigurationError(
        f"executor must be one of {list(EXECUTOR_NAMES)!r} or an executor object, got {executor!r}"
    )


def execute(
    workflow: Workflow, executor: str | ExecutorLike | None, options: RunOptions
) -> WorkflowRun:
    """:meth:`Workflow.execute`: run on ``executor`` (default sequential), release what we made."""
    runner, release = resolve_executor(executor)
    try:
        return runner.execute(workflow, **options)
    finally:
        if release is not None:
            release()


async def execute_async(
    workflow: Workflow, executor: str | ExecutorLike | None, options: RunOptions
) -> WorkflowRun:
    """:meth:`Workflow.execute_async`: run on ``executor`` (default: on the running loop)."""
    runner, release = resolve_executor("async" if executor is None else executor)
    try:
        return await runner.execute_async(workflow, **options)
    finally:
        if release is not None:
            release()


def execute_task(task: Task[..., Any]) -> None:
    """:meth:`Task.execute`: the task alone, inline; its failure raised as itself."""
    try:
        SequentialExecutor().execute(_alone(task))
    except WorkflowFailedError as failed:
        raise failed.failures[0] from failed.failures[0].__cause__


async def execute_task_async(task: Task[..., Any]) -> None:
    """:meth:`Task.execute_async`: the task alone, on the running loop."""
    from ._async import AsyncExecutor

    try:
        await AsyncExecutor().execute_async(_alone(task))
    except WorkflowFailedError as failed:
        raise failed.failures[0] from failed.failures[0].__cause__


def _alone(task: Task[..., Any]) -> Workflow:
    workflow = Workflow(task.name)
    workflow.add_task(task, depends_on=())
    return workflow
