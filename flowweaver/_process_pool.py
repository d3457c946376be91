"""Worker processes for :class:`~flowweaver.ProcessExecutor`: the pool, the worker, pickling.

See ``_process`` for the design. What ``_process`` uses: :class:`WorkerPool` and
:class:`Job`, :func:`payload` (pickling a call) and :func:`cancel`. A pool runs calls
(pickled payloads) on up to ``size`` processes, reports every outcome through the call's
``report``, and can cancel a queued call or kill a running one.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib
import io
import os
import pickle
import signal
import sys
import threading
import traceback
import types
from collections import deque
from typing import TYPE_CHECKING, Any

from ._calls import invoke
from ._errors import ExecutorShutdownError, TransferError, WorkerDiedError, WorkerStartError
from ._task import Task

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.context import BaseContext

__all__ = ["Job", "WorkerPool", "cancel", "payload"]

_STOP = b""  # tells a worker to exit
#: Exit status of a worker that, while re-importing its parent's main module, was asked to
#: start workers itself: the module runs a workflow at import (no ``__main__`` guard).
MAIN_REIMPORT_EXIT = 86
#: How long to wait for a killed or stopped worker process to be reaped.
_REAP_TIMEOUT = 5.0


# -- pickling -------------------------------------------------------------------------------


def _task_function(module: str, qualname: str) -> Callable[..., Any]:
    """In the worker: the function behind ``module.qualname`` (a Task's ``fn``)."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target.fn if isinstance(target, Task) else target


def _shadowing_task(fn: types.FunctionType) -> tuple[str, str] | None:
    """``(module, qualname)`` if ``fn`` is reachable there only through the Task wrapping it."""
    module_name, qualname = fn.__module__, fn.__qualname__
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    if module is None or "<locals>" in qualname:
        return None
    target: object = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    if isinstance(target, Task) and target.fn is fn:
        return module_name, qualname
    return None


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.FunctionType:
            reference = _shadowing_task(obj)
            if reference is not None:
                return _task_function, reference
        return NotImplemented


def _dumps(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def payload(
    name: str,
    timeout: float | None,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
) -> bytes:
    """What a worker receives for one call; the name travels apart so errors can use it.

    Raises:
        TransferError: The function or its arguments cannot be pickled.
    """
    try:
        body = _dumps((fn, args, kwargs))
    except Exception as error:
        try:
            _dumps(fn)
        except Exception:
            what = (
                f"its function {fn!r} cannot be pickled ({type(error).__name__}: {error}); "
                "a function must be defined at module level to run in a process"
            )
        else:
            what = f"its arguments cannot be pickled ({type(error).__name__}: {error})"
        raise TransferError(name, what) from error
    return pickle.dumps((name, timeout, body), pickle.HIGHEST_PROTOCOL)


# -- the worker process ---------------------------------------------------------------------


def _worker_main(conn: Connection, sys_path: list[str]) -> None:
    """A worker's whole life: run calls from ``conn`` until told to stop or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sys.path[:] = sys_path
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if data == _STOP:
            return
        try:
            conn.send_bytes(_run(data))
        except OSError:
            return


def _run(data: bytes) -> bytes:
    name, timeout, body = pickle.loads(data)
    try:
        fn, args, kwargs = pickle.loads(body)
    except Exception as error:
        detail = f"loading it in the worker failed ({type(error).__name__}: {error})"
        return _dumps((False, TransferError(name, detail)))
    try:
        outcome: tuple[bool, object] = (True, invoke(fn, args, kwargs, name, timeout))
    except BaseException as error:  # sent to the parent, as a Future would carry it
        error.add_note("in the worker process:\n" + "".join(traceback.format_exception(error)))
        outcome = (False, error)
    try:
        return _dumps(outcome)
    except Exception as error:
        what = "result" if outcome[0] else f"exception {outcome[1]!r}"
        detail = f"its {what} cannot be pickled ({type(error).__name__}: {error})"
        return _dumps((False, TransferError(name, detail, returning=True)))


# -- the parent side ------------------------------------------------------------------------

_PENDING, _RUNNING, _DONE = 0, 1, 2


class Job:
    """One call on its way through the pool. ``report(ok, value)`` is called exactly once,
    unless the call is cancelled or killed (whoever does that reports instead)."""

    __slots__ = ("name", "payload", "report", "start", "state", "worker")

    def __init__(
        self,
        name: str,
        payload: bytes,
        report: Callable[[bool, object], None],
        start: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.payload = payload
        self.report = report
        #: Called when a worker takes the call; False drops it (a cancelled Future).
        self.start = start
        self.state = _PENDING
        self.worker: _Worker | None = None


class _Worker:
    __slots__ = ("call", "conn", "process", "retired", "thread")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.call: Job | None = None
        #: Set (under the pool lock) when the pool stops caring about this worker.
        self.retired = False
        self.thread: threading.Thread | None = None


class WorkerPool:
    """Up to ``size`` worker processes and the calls waiting for them. Thread-safe."""

    def __init__(self, size: int, context: BaseContext) -> None:
        self._size = size
        self._context = context
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._pending: deque[Job] = deque()
        self._closed = False
        self._started = 0
        #: Set when workers cannot start at all (see MAIN_REIMPORT_EXIT): calls fail at once.
        self._unstartable: int | None = None

    def dispatch(self, call: Job) -> None:
        with self._lock:
            if self._closed:
                raise ExecutorShutdownError("cannot schedule new calls after shutdown")
            if self._unstartable is not None:
                call.state = _DONE
                exitcode = self._unstartable
            else:
                exitcode = None
                self._pending.append(call)
        if exitcode is not None:
            call.report(False, _start_error(call.name, exitcode))
            return
        with self._lock:
            try:
                assigned = self._assign()
            except BaseException:  # no worker could start: the call must not linger
                if call.state == _PENDING:
                    self._pending.remove(call)
                    call.state = _DONE
                raise
        self._send(assigned)

    def cancel(self, call: Job) -> bool:
        """Drop a call that no worker has taken yet; False if one has."""
        with self._lock:
            if call.state != _PENDING:
                return False
            self._pending.remove(call)
            call.state = _DONE
            return True

    def kill(self, call: Job) -> bool:
        """Stop a running call by killing its process; a replacement starts. False if the call
        is not running (already done, or never taken)."""
        with self._lock:
            worker = call.worker
            if call.state != _RUNNING or worker is None or worker.call is not call:
                return False
            call.state = _DONE
            self._retire(worker)
            if not self._closed:
                with contextlib.suppress(Exception):  # else the next dispatch tries again
                    self._idle.append(self._start_worker())
            assigned = self._assign()
            orphans = self._orphans()
        worker.process.kill()
        self._send(assigned)
        cancel(orphans)
        worker.process.join(_REAP_TIMEOUT)
        return True

    def close(self, wait: bool, cancel_pending: bool) -> list[Job]:
        """Stop taking calls; workers exit once idle. Returns the calls cancelled."""
        with self._lock:
            self._closed = True
            cancelled: list[Job] = []
            if cancel_pending:
                cancelled = list(self._pending)
                self._pending.clear()
                for call in cancelled:
                    call.state = _DONE
            idle, self._idle = self._idle, []
            for worker in idle:
                self._retire(worker)
            workers = list(self._workers)
        for worker in idle:
            self._stop(worker)
        if wait:
            for worker in workers:
                if worker.thread is not None:
                    worker.thread.join()
                worker.process.join(_REAP_TIMEOUT)
        return cancelled

    # -- internals (callers hold the lock where noted) --------------------------------------

    def _start_worker(self) -> _Worker:
        """Start one worker process (lock held)."""
        if getattr(self._context.current_process(), "_inheriting", False):
            # We are a worker still importing the parent's main module, and that module runs
            # a workflow on processes at import. Starting a process here cannot work; exit
            # quietly with a status the parent turns into one clear error.
            os._exit(MAIN_REIMPORT_EXIT)
        parent, child = self._context.Pipe(duplex=True)
        self._started += 1
        process = self._context.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(child, list(sys.path)),
            name=f"flowweaver-process-{self._started}",
            daemon=True,
        )
        process.start()
        child.close()  # so that the parent sees EOF when the worker dies
        worker = _Worker(process, parent)
        thread = threading.Thread(
            target=self._read, args=(worker,), name=f"{process.name}-reader", daemon=True
        )
        worker.thread = thread
        self._workers.append(worker)
        thread.start()
        return worker

    def _retire(self, worker: _Worker) -> None:
        """Forget a worker (lock held)."""
        worker.retired = True
        worker.call = None
        if worker in self._workers:
            self._workers.remove(worker)

    def _assign(self) -> list[tuple[_Worker, Job]]:
        """Give pending calls to idle workers, starting workers up to ``size`` (lock held)."""
        assigned: list[tuple[_Worker, Job]] = []
        while self._pending:
            if self._idle:
                worker = self._idle.pop()
            elif len(self._workers) < self._size and not self._closed:
                try:
                    worker = self._start_worker()
                except Exception:
                    if self._workers:
                        break  # the workers we have will take the call
                    raise
            else:
                break
            call = self._pending.popleft()
            if call.start is not None and not call.start():
                call.state = _DONE
                self._idle.append(worker)
                continue
            call.state = _RUNNING
            call.worker = worker
            worker.call = call
            assigned.append((worker, call))
        return assigned

    def _orphans(self) -> list[Job]:
        """After shutdown, calls left with no worker to run them (lock held): cancelled."""
        if not self._closed or self._workers:
            return []
        orphans = list(self._pending)
        self._pending.clear()
        for call in orphans:
            call.state = _DONE
        return orphans

    def _send(self, assigned: list[tuple[_Worker, Job]]) -> None:
        for worker, call in assigned:
            with contextlib.suppress(OSError):  # a dead worker: its reader reports the call
                worker.conn.send_bytes(call.payload)

    def _stop(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.conn.send_bytes(_STOP)

    def _read(self, worker: _Worker) -> None:
        """A worker's reader thread: report each outcome, hand the worker its next call."""
        conn = worker.conn
        try:
            while True:
                try:
                    data = conn.recv_bytes()
                except (EOFError, OSError):
                    self._lost(worker)
                    return
                stop = False
                with self._lock:
                    if worker.retired:  # killed: whoever killed it reported the call
                        return
                    call, worker.call = worker.call, None
                    if call is not None:
                        call.state = _DONE
                    if self._closed and not self._pending:
                        self._retire(worker)
                        stop = True
                    else:
                        self._idle.append(worker)
                    assigned = self._assign()
                self._send(assigned)
                if stop:
                    self._stop(worker)
                if call is not None:
                    call.report(*_outcome(data, call.name))
                if stop:
                    return
        finally:
            conn.close()

    def _lost(self, worker: _Worker) -> None:
        """The worker's pipe closed: it exited (asked to, killed, or crashed)."""
        with self._lock:
            if worker.retired:
                return
            call = worker.call
            self._retire(worker)
            if worker in self._idle:
                self._idle.remove(worker)
        worker.process.join(_REAP_TIMEOUT)
        exitcode = worker.process.exitcode
        unstartable: list[Job] = []
        with self._lock:
            if exitcode == MAIN_REIMPORT_EXIT:  # every worker would do the same: stop trying
                self._unstartable = exitcode
                unstartable = list(self._pending)
                self._pending.clear()
                for waiting in unstartable:
                    waiting.state = _DONE
            assigned = self._assign()
            orphans = self._orphans()
        self._send(assigned)
        cancel(orphans)
        for waiting in unstartable:
            waiting.report(False, _start_error(waiting.name, exitcode))
        if call is not None:
            call.state = _DONE
            if exitcode == MAIN_REIMPORT_EXIT:
                call.report(False, _start_error(call.name, exitcode))
            else:
                call.report(False, WorkerDiedError(call.name, exitcode))


def _start_error(name: str, exitcode: int | None) -> WorkerStartError:
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return WorkerStartError(name, exitcode, main if isinstance(main, str) else None)


def cancel(calls: list[Job]) -> None:
    for call in calls:
        call.report(False, cf.CancelledError())


def _outcome(data: bytes, name: str) -> tuple[bool, object]:
    try:
        ok, value = pickle.loads(data)
    except Exception as error:
        detail = f"unpickling it in the parent failed ({type(error).__name__}: {error})"
        return False, TransferError(name, detail, returning=True)
    return ok, value
