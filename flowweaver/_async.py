"""The asyncio executor: workflows on an event loop, optionally uvloop."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Unpack

from ._drivers import drive_async
from ._engine import Engine
from ._errors import EventLoopError
from ._retry import check_count

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._engine import RunOptions
    from ._run import WorkflowRun
    from ._workflow import Workflow

__all__ = ["AsyncExecutor"]

logger = logging.getLogger("flowweaver.executors")


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        logger.warning(
            "use_uvloop=True but uvloop is not installed (pip install 'flowweaver[uvloop]'); "
            "running on the default asyncio event loop"
        )
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class AsyncExecutor:
    """Runs workflows on an asyncio event loop: I/O-bound work without a thread per task.

    Async task functions run as tasks on the loop; sync ones run in a thread pool, and an
    awaitable they return is awaited on the loop (so the seed's
    ``fn=lambda uid=uid: fetch_user(uid)`` runs concurrently). A timed-out async task is
    cancelled; a timed-out sync task's thread cannot be, so its late result is discarded. Under
    fail-fast, the tasks in flight are cancelled when a task fails for good.

    Example:
        >>> import asyncio
        >>> from flowweaver import Task, Workflow, AsyncExecutor
        >>> async def fetch() -> int:
        ...     await asyncio.sleep(0)
        ...     return 7
        >>> wf = Workflow("w")
        >>> wf.add_task(Task(name="fetch", fn=fetch))
        >>> AsyncExecutor().execute(wf).result("fetch")
        7

    ``execute`` works from sync code (it runs its own loop); inside a running loop (Jupyter, a
    web server) use ``await executor.execute_async(wf)``.

    Args:
        use_uvloop: Run ``execute`` on uvloop. Without uvloop installed this logs a warning and
            uses asyncio. (``execute_async`` runs on whatever loop is running.)
        max_workers: Most tasks in flight at once (None: no limit); also the number of daemon
            threads for sync tasks (default ``min(32, cpu_count + 4)``). A sync call only
            starts when a thread is free, so its timeout never ticks while it waits.

    Raises:
        ConfigurationError: ``max_workers`` is not an int >= 1.
    """

    def __init__(self, use_uvloop: bool = False, max_workers: int | None = None) -> None:
        if max_workers is not None:
            check_count("AsyncExecutor", "max_workers", max_workers, minimum=1)
        self.use_uvloop = bool(use_uvloop)
        self.max_workers = max_workers

    def __repr__(self) -> str:
        return f"AsyncExecutor(use_uvloop={self.use_uvloop!r}, max_workers={self.max_workers!r})"

    def execute(self, workflow: Workflow, **options: Unpack[RunOptions]) -> WorkflowRun:
        """Run ``workflow`` on a new event loop and return when it has ended.

        Raises:
            EventLoopError: Called from inside a running event loop; await
                :meth:`execute_async` there instead.
            WorkflowFailedError: A task failed (a ``RuntimeError``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise EventLoopError(
                "AsyncExecutor.execute() cannot run inside a running event loop; "
                "use 'await executor.execute_async(workflow)' (or 'await workflow.execute_async()')"
            )
        with asyncio.Runner(loop_factory=_loop_factory(self.use_uvloop)) as runner:
            return runner.run(self.execute_async(workflow, **options))

    async def execute_async(self, workflow: Workflow, **options: Unpack[RunOptions]) -> WorkflowRun:
        """Run ``workflow`` on the running loop.

        Cancelling the awaiting task cancels the tasks in flight, marks everything unfinished
        ``cancelled`` and re-raises ``CancelledError``.

        Raises:
            WorkflowFailedError: A task failed (a ``RuntimeError``).
        """
        engine = Engine(workflow, options)
        threads = self.max_workers or min(32, (os.cpu_count() or 1) + 4)
        await drive_async(engine, threads, self.max_workers)
        return engine.raise_for_failures()
