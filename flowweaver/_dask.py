"""Workflows on a Dask ``distributed`` cluster: the engine decides, the cluster runs the calls.

Design:

* **The engine still decides what runs next.** :class:`DaskExecutor` gives the pool driver
  (``_drivers.drive_pool``) a lane that submits each attempt under a fresh key (and
  ``pure=False``): Dask would otherwise take a retry (same function, same arguments) for the
  call it already has and never run it again. A Dask future's
  done-callback posts the outcome to the lane's outbox, which only the driver thread reads. So
  retries, timeouts, callbacks and the failure policy are the engine's, as on every executor.
* **Results stay on the workers.** A completed call is reported as a :class:`DaskResult` (a
  :class:`~flowweaver._run.Remote` holding the Dask future), not as its value. When the engine
  builds a downstream call from it, the lane swaps each one back for its future, and Dask
  resolves futures inside the ``args`` tuple and ``kwargs`` dict on the worker: data moves
  worker to worker, never through this process. The one exception is a Workflow, DAG or Flow
  that a task returns (a subflow built at run time): the engine runs it here, so it comes
  back (Dask reports each result's type, which is how it is told apart).
* **What a run holds when it ends.** The results of tasks that no task of the run depends on
  (its outputs) are gathered in one batch. Every other result stays on the cluster until it is
  read (``run.result(name)``, ``run.results``, ``task.result``, a ``when=`` predicate); reading
  fetches it once and the run keeps the value. A result kept on the cluster occupies cluster
  memory until it is read or the run is dropped (a workflow and its tasks keep their latest run
  until they run again), and can no longer be read once the client is closed.
* **Timeouts and cancellation.** A task running on a cluster cannot be stopped. The worker
  cancels a coroutine on time itself (``_calls.invoke``); a sync call past its deadline is
  abandoned: its Dask future is cancelled, which keeps it from starting if it has not, but a
  running call runs on and its late result is discarded. Calls with a timeout are sent only
  while fewer calls are in flight than the cluster has threads, so a timeout's clock starts
  about when the call does; calls without one are sent as soon as they are ready, and Dask's
  scheduler queues and places them.
* **Keys and latency.** Calls are keyed ``<function name>-<random hex>`` as Dask keys its own
  impure calls (the scheduler keeps statistics per key prefix). A task is begun once its
  dependencies are done, so each dependency level would cost a round trip through this
  process; with ``lookahead=`` (``_dask_ahead``) most tasks' calls are sent as soon as their
  dependencies' calls are on the cluster, and the engine's attempt adopts that call. A
  Dask client sends its messages to the scheduler in batches at most every 10 ms, which made
  that round trip ~10 ms (a chain of tiny tasks ran at 1.8x the time of raw ``client.submit``
  of the whole chain). ``send_interval`` sets that batching on the client the executor uses:
  2 ms (what Dask's own workers use) by default on a client the executor starts, and the chain
  runs within ~1.1x of raw ``client.submit``.
* **One graph per burst.** ``send`` only queues a call; the driver calls ``flush`` after each
  burst of sends (every call made ready by the outcomes it just settled), and the burst goes
  as one ``client.map``: one message and one graph update on the scheduler instead of one per
  call, which is what kept wide graphs at ~1.3x the time of raw ``client.submit``. A graph
  fails as a whole, so a call of a burst is sent again alone when the scheduler failed or
  cancelled its whole graph before any call of it ran: it could not unpickle the graph
  (another call of it may be the culprit), or one of its calls named a lost dependency.
  Only those two, recognised by what Dask says: a call that ran is never run again.
* ``distributed`` is imported here, when a :class:`DaskExecutor` is made: ``import flowweaver``
  never imports it.
"""

from __future__ import annotations

import logging
import pickle
import queue
import sys
import threading
from concurrent.futures import CancelledError
from functools import partial
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from uuid import uuid4

from ._calls import INTERRUPTS, invoke
from ._checks import check_count, check_number
from ._dask_ahead import AheadDriver, AheadLane, looks_ahead
from ._drivers import drive_pool
from ._errors import (
    ConfigurationError,
    MissingDependencyError,
    ResultUnavailableError,
    TransferError,
)
from ._executors import BaseExecutor
from ._public import publish
from ._run import Remote
from ._subflow import Nestable

if TYPE_CHECKING:
    import concurrent.futures as cf
    from collections.abc import Callable, Sequence
    from types import ModuleType

    from distributed import Client, Future

    from ._engine import Engine
    from ._lanes import Outcome

    #: A queued call: (token, task name, fn, args, kwargs, timeout).
    _Queued = tuple[
        int, str, Callable[..., Any], tuple[Any, ...], dict[str, Any] | None, float | None
    ]

__all__ = ["DaskExecutor", "DaskResult"]

logger = logging.getLogger("flowweaver.dask")

P = ParamSpec("P")
R = TypeVar("R")

#: How many calls without a timeout may wait in Dask's queues: all of them (Dask schedules).
_UNBOUNDED = sys.maxsize

#: The client-to-scheduler batching interval (seconds) set on a client the executor starts;
#: Dask's own workers batch their messages to the scheduler every 2 ms.
SEND_INTERVAL = 0.002

#: How many calls a run may send ahead of their dependencies by default: none. On a local
#: cluster, measured on a settled cluster, sending ahead neither won nor lost beyond the
#: noise (``docs/guide/dask.md#look-ahead``); it is there for clients far from their
#: scheduler, where the round trip per dependency level is what a run waits for.
LOOKAHEAD = 0


def import_distributed() -> ModuleType:
    """Import ``distributed``, or say which extra installs it.

    Raises:
        MissingDependencyError: ``distributed`` is not installed.
    """
    try:
        import distributed
    except ImportError as error:
        raise MissingDependencyError("DaskExecutor", "dask", "distributed") from error
    return distributed


def _root(error: BaseException) -> BaseException:
    """The innermost cause: Dask wraps a pickling error in its own TypeError."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _describe(error: BaseException) -> str:
    root = _root(error)
    return f"{type(root).__name__}: {root}"


def _transfer_error(name: str, error: BaseException) -> BaseException:
    """Why a call could not be sent: a :class:`TransferError` when it does not pickle."""
    if not isinstance(error, (TypeError, pickle.PicklingError)):
        return error
    transfer = TransferError(
        name,
        _describe(error),
        destination="the cluster",
        hint="a task's function, what it captures and its arguments must pickle with cloudpickle",
    )
    transfer.__cause__ = _root(error)
    return transfer


class DaskResult(Remote):
    """A task's result kept in a Dask worker's memory: its future, fetched when read."""

    __slots__ = ("future", "task_name")

    def __init__(self, future: Future[Any], task_name: str) -> None:
        self.future = future
        self.task_name = task_name

    def __repr__(self) -> str:
        return f"<DaskResult of task {self.task_name!r}: {self.future.key!r}>"

    def fetch(self) -> object:
        try:
            return self.future.result()
        except Exception as error:
            if self.future.client.status in ("closing", "closed"):
                reason = "its Dask client is closed (read it before closing the client)"
            else:
                reason = _describe(error)
            raise ResultUnavailableError(self.task_name, reason) from error

    @classmethod
    def fetch_many(cls, remotes: Sequence[Remote]) -> list[object]:
        """One ``gather`` per client instead of a round trip per result."""
        mine = [r for r in remotes if isinstance(r, DaskResult)]
        if len(mine) != len(remotes):  # pragma: no cover - the run batches by exact type
            return [r.fetch() for r in remotes]
        values: list[object] = [None] * len(mine)
        by_client: dict[int, list[int]] = {}
        for k, remote in enumerate(mine):
            by_client.setdefault(id(remote.future.client), []).append(k)
        for batch in by_client.values():
            client = mine[batch[0]].future.client
            try:
                gathered = client.gather([mine[k].future for k in batch])
            except Exception:  # one by one, so the error names the task whose result failed
                gathered = [mine[k].fetch() for k in batch]
            for k, value in zip(batch, gathered, strict=True):
                values[k] = value
        return values


#: These two texts are what ``distributed.scheduler`` says, checked against its source: the
#: deserialization error in distributed 2024.1.0 and 2026.8.0; the "lost dependencies" reason
#: in 2026.8.0 (2024.1.0 gives such a cancellation no reason: the call then fails, as any
#: cancelled call does, and is never run twice). ``tests/test_dask.py`` finds both in the
#: installed scheduler's source, so an upgrade that rewords them fails a test instead of
#: quietly turning the resend off.
#: The scheduler's error for a graph it could not unpickle: it fails every call of the graph,
#: none of which ran.
_GRAPH_NOT_REBUILT = "Error during deserialization of the task graph"
#: Why the scheduler cancels every call of a new graph when one names a lost dependency.
_LOST_DEPENDENCIES = "lost dependencies"


def _cancel_reason(future: Future[Any]) -> str | None:
    """Why Dask cancelled ``future`` (its ``FutureCancelledError.reason``), if it says.

    Asks the client's event loop, which already holds the answer (the future is done)."""
    try:
        future.result(timeout=10)
    except BaseException as error:
        return getattr(error, "reason", None)
    return None


def _kept(future: Future[Any], name: str) -> object:
    """What a finished call reports: its result kept on the cluster, except a workflow that a
    builder task returned, which the engine must hold to run it as a child run (Dask tells the
    client the type of every result, so no other result moves)."""
    kind = future.type
    if isinstance(kind, type) and issubclass(kind, Nestable):
        return future.result(timeout=60)
    return DaskResult(future, name)


class DaskLane:
    """The pool driver's lane onto a Dask client (see the module docstring)."""

    def __init__(self, client: Client) -> None:
        from dask.utils import funcname

        self.outbox: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._client = client
        self._futures: dict[int, Future[Any]] = {}
        self._queued: list[_Queued] = []
        #: Calls sent in a graph with others, until their outcome: sent again alone if Dask
        #: fails or cancels the whole graph before they ran.
        self._grouped: dict[int, _Queued] = {}
        self._cancelling: set[int] = set()  # sent calls this lane asked Dask to drop
        #: When a dict: the future of every call sent, by token, until its reader takes it.
        self.recent: dict[int, Future[Any]] | None = None
        self._closed = False
        # Makes "may it be sent again?" and sending it one step against cancel() and close().
        self._lock = threading.Lock()
        self._funcname: Callable[[Any], str] = funcname

    def send(
        self,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
    ) -> None:
        """Queue the call; :meth:`flush` sends the queued calls to the scheduler at once."""
        if args:
            args = tuple([a.future if type(a) is DaskResult else a for a in args])
        if kwargs:
            kwargs = {k: v.future if type(v) is DaskResult else v for k, v in kwargs.items()}
        self._queued.append((token, name, fn, args, kwargs, timeout))

    def flush(self) -> None:
        """Send the queued calls as one graph: one message, one update of the scheduler.

        Sending each call on its own costs the scheduler a graph update per call; on a wide
        graph that made a run ~1.3x slower. A graph fails as a whole: if it cannot be sent (a
        call that does not pickle), each call is sent alone, and one that cannot be reports
        its error (a :class:`TransferError` when it does not pickle) as its outcome; if the
        scheduler fails or cancels it before a call ran, :meth:`_report` sends that call again
        alone.
        """
        calls, self._queued = self._queued, []
        if len(calls) > 1:
            try:
                futures = self._submit(calls)
            except INTERRUPTS:
                raise
            except BaseException:
                pass  # one call that does not pickle fails the whole graph: send them alone
            else:
                watched = 0
                try:
                    for c, future in zip(calls, futures, strict=True):
                        self._grouped[c[0]] = c
                        self._watch(c, future)
                        watched += 1
                finally:  # interrupted: no future may run unknown to cancel() and close()
                    if watched < len(calls):
                        self.cancel_futures(futures[watched:])
                return
        for c in calls:
            self._send_alone(c)

    def _send_alone(self, c: _Queued) -> None:
        try:
            (future,) = self._submit([c])
        except INTERRUPTS:
            raise
        except BaseException as error:
            self.outbox.put((c[0], False, _transfer_error(c[1], error)))
        else:
            self._watch(c, future)

    def _submit(self, calls: list[_Queued]) -> list[Future[Any]]:
        # Keyed like Dask's own impure calls, by the function's name: the scheduler keeps
        # statistics per key prefix; one prefix per task name cost ~40 % more per task. New
        # keys on every attempt to send: a graph that failed to send still leaves its keys
        # in the client, and reusing one would tie a call to that graph's fate.
        funcname = self._funcname
        if len(calls) == 1:
            _, name, fn, args, kwargs, timeout = calls[0]
            key = f"{funcname(fn)}-{uuid4().hex}"
            return [
                self._client.submit(invoke, fn, args, kwargs, name, timeout, key=key, pure=False)
            ]
        _, names, fns, argss, kwargss, timeouts = zip(*calls, strict=True)
        keys = [f"{funcname(fn)}-{uuid4().hex}" for fn in fns]
        futures: list[Future[Any]] = self._client.map(
            invoke, fns, argss, kwargss, names, timeouts, key=keys, pure=False
        )
        return futures

    def _watch(self, c: _Queued, future: Future[Any]) -> None:
        token, name = c[0], c[1]
        self._futures[token] = future
        if self.recent is not None:
            self.recent[token] = future
        future.add_done_callback(partial(self._report, token, name))

    def _report(self, token: int, name: str, future: Future[Any]) -> None:
        # Runs on Dask's callback thread. The value stays on the worker: only its future is
        # posted; an error's exception object is already in this process. Every path posts
        # exactly one outcome (or sends the call again, which will): the driver waits for it.
        self._futures.pop(token, None)
        grouped = self._grouped.pop(token, None)
        outcome: Outcome
        try:
            status = future.status
            if status == "finished":
                outcome = (token, True, _kept(future, name))
            elif status == "cancelled":
                if (
                    grouped is not None
                    and _cancel_reason(future) == _LOST_DEPENDENCIES
                    and self._resend(grouped)
                ):
                    return  # another call of its graph named a lost dependency
                outcome = (token, False, CancelledError())
            else:
                error = future.exception()
                if (
                    grouped is not None
                    and isinstance(error, RuntimeError)
                    and str(error).startswith(_GRAPH_NOT_REBUILT)
                    and self._resend(grouped)
                ):
                    return  # the scheduler could not unpickle its graph, maybe another call
                outcome = (token, False, error)
        except BaseException as error:  # e.g. the client closed while we asked
            outcome = (token, False, error)
        self._cancelling.discard(token)
        self.outbox.put(outcome)

    def _resend(self, c: _Queued) -> bool:
        """Send a call of a failed graph again, alone; False if this lane asked it to stop.

        Only for the failures of a whole graph that happen before any call of it runs, so a
        call that ran never runs again."""
        with self._lock:
            if self._closed or c[0] in self._cancelling:
                return False
            self._send_alone(c)
            return True

    def cancel(self, token: int) -> bool:
        """Ask Dask to drop the call. Dask cannot say whether it had started: report False.

        A call still queued here is dropped and reports its cancellation (True)."""
        for k, c in enumerate(self._queued):
            if c[0] == token:
                del self._queued[k]
                self.outbox.put((token, False, CancelledError()))
                return True
        with self._lock:
            self._cancelling.add(token)
            future = self._futures.get(token)
        if future is not None:
            self.cancel_futures([future])
        return False

    def abandon(self, token: int) -> bool:
        """A running call cannot be stopped: :meth:`cancel` asked Dask to drop it, and its
        slot counts as busy until that cancellation comes back as the call's outcome."""
        return False

    def close(self, wait: bool) -> None:
        with self._lock:
            self._closed = True
            futures = list(self._futures.values())
        self._queued.clear()
        if futures:
            self.cancel_futures(futures)

    def cancel_futures(self, futures: list[Future[Any]]) -> None:
        """Ask Dask to drop these calls (one message)."""
        try:
            self._client.cancel(futures)
        except Exception:  # the client may be closing; the calls die with it
            logger.debug("cancelling %d Dask futures failed", len(futures), exc_info=True)


def _apply(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    # What submit() sends, so that the caller's keyword arguments never reach client.submit.
    return fn(*args, **kwargs)


class DaskExecutor(BaseExecutor):
    """Runs each task call on a Dask ``distributed`` cluster; flowweaver still schedules.

    Needs the ``dask`` extra (``pip install 'flowweaver[dask]'``). The engine decides what runs
    next, retries, times out and applies the failure policy exactly as on every other executor;
    each call goes to the cluster. Upstream results reach downstream calls as Dask futures, so
    large intermediate results stay on the workers.

    Examples:
        >>> from flowweaver import DaskExecutor, Task, Workflow
        >>> with DaskExecutor(address="tcp://scheduler:8786") as executor:  # doctest: +SKIP
        ...     run = executor.execute(workflow)

    What must be serialisable: each task's function, what it captures, and its arguments are
    sent with cloudpickle (lambdas and closures work; locks, open files and sockets do not).
    An attempt that cannot be sent fails with :class:`TransferError`. Results that move
    between workers or to this process must pickle too. Callbacks, monitors and ``when=``
    predicates run in this process and are never sent.

    What a run holds: the outputs (results of tasks nothing in the run depends on) are
    gathered when the run ends; every other result stays on the cluster until read, then
    fetched once (reading one after the client closed raises
    :class:`ResultUnavailableError`). A running call cannot be cancelled: after its timeout,
    or when a run stops, its result is discarded but it runs to its end on its worker.

    Lifecycle: an executor that started its client (from ``address``, or a local cluster) owns
    it and closes it in :meth:`shutdown` (or on leaving a ``with`` block); a client you pass,
    or the current one, stays yours.

    Args:
        client: A (synchronous) ``distributed.Client`` to use. Default: the current client
            (the latest one made in this process, or the one made current with
            ``client.as_current()``), else a new local cluster (``distributed.Client()``: one
            worker process per core).
        address: Connect to the scheduler at this address (``"tcp://10.0.0.5:8786"``)
            instead. Give ``client`` or ``address``, not both.
        max_workers: Most calls in flight at once. Default: calls without a timeout are sent
            as soon as they are ready (Dask queues them); calls with one wait until fewer
            calls are in flight than the cluster had threads when the run started.
        send_interval: Seconds the client waits between batches of messages to the
            scheduler, set on the client before each run. A task is sent when its last
            dependency finishes, so this is added to every dependency level: Dask's default
            of 10 ms makes a chain of short tasks nearly twice as slow as one Dask schedules
            itself. Default: 2 ms on a client this executor starts; a client you pass (or the
            current one) is left as it is unless you give this, which then changes it for
            all of its users.
        lookahead: How many calls may wait on the cluster for dependencies that are still
            running, sent so the scheduler starts each the moment they finish (no round trip
            through this process per dependency level); 0 turns it off. Only tasks whose
            first attempt the engine sends unconditionally are sent ahead (no ``when=``,
            skip rule, subflow or mapped task), and not in runs with a timeout, ``limits=``,
            a priority, ``cache=True``, a ``store=``, mapped tasks or ``max_workers``. The
            engine still begins each attempt, and a call sent ahead on a dependency's attempt
            that then failed is cancelled (it never ran) and sent again. Default: 0 (off);
            try 1,000 for a client far from its scheduler.

    Raises:
        MissingDependencyError: ``distributed`` is not installed (also an ``ImportError``).
        ConfigurationError: ``client`` is not a ``distributed.Client``, ``address`` is not a
            non-empty string, both are given, ``max_workers`` < 1, ``lookahead`` < 0, or
            ``send_interval`` is not a finite number >= 0.
    """

    def __init__(
        self,
        client: Client | None = None,
        address: str | None = None,
        *,
        max_workers: int | None = None,
        send_interval: float | None = None,
        lookahead: int = LOOKAHEAD,
    ) -> None:
        distributed = import_distributed()
        if max_workers is not None:
            check_count("DaskExecutor", "max_workers", max_workers, minimum=1)
        check_count("DaskExecutor", "lookahead", lookahead)
        if send_interval is not None:
            send_interval = check_number("DaskExecutor", "send_interval", send_interval)
        if client is not None and address is not None:
            raise ConfigurationError(
                f"DaskExecutor takes a client or an address, not both; got client={client!r} "
                f"and address={address!r}"
            )
        owned = False
        if client is not None:
            if not isinstance(client, distributed.Client):
                raise ConfigurationError(
                    f"DaskExecutor client must be a distributed.Client, got {client!r}"
                )
        elif address is not None:
            if not isinstance(address, str) or not address:
                raise ConfigurationError(
                    f"DaskExecutor address must be a non-empty str, got {address!r}"
                )
            client, owned = distributed.Client(address), True
        else:
            try:
                client = distributed.Client.current()
            except ValueError:  # no client in this process: start a local cluster
                client, owned = distributed.Client(), True
                from ._dask_logs import quiet_compute_failed

                quiet_compute_failed(client)  # our cluster: the run reports task failures
        self.client: Client = client
        self.max_workers = max_workers
        self.lookahead = lookahead
        self.send_interval = SEND_INTERVAL if send_interval is None and owned else send_interval
        self._owned = owned
        self._pool: cf.Executor | None = client.get_executor(pure=False)  # for submit()
        self._set_send_interval()

    def __repr__(self) -> str:
        return (
            f"DaskExecutor({self.client!r}, max_workers={self.max_workers!r}, "
            f"send_interval={self.send_interval!r}, lookahead={self.lookahead!r})"
        )

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[R]:
        """Run ``fn(*args, **kwargs)`` on the cluster; its future delivers the value here.

        Cancelling the future keeps a call that has not started from running (a running one
        runs on). ``fn`` and its arguments must pickle with cloudpickle.
        """
        pool = self._pool
        if pool is None:  # after shutdown(): a client that is not ours is still open
            pool = self._pool = self.client.get_executor(pure=False)
        future: cf.Future[R] = pool.submit(_apply, fn, args, kwargs)
        return future

    def _set_send_interval(self) -> None:
        # Again before each run: a client that reconnects makes a new comm, at 10 ms.
        comm = getattr(self.client, "scheduler_comm", None)
        if self.send_interval is not None and comm is not None:
            comm.interval = self.send_interval

    def _drive(self, engine: Engine) -> None:
        self._set_send_interval()
        if self.max_workers is not None:
            capacity: int | None = self.max_workers
            depth = 0
        else:
            threads = sum(self.client.nthreads().values())
            capacity = threads or None  # no worker yet (an adaptive cluster): no bound
            depth = _UNBOUNDED
        lane = DaskLane(self.client)
        try:
            if depth and self.lookahead and looks_ahead(engine):
                ahead = AheadLane(lane, engine, self.lookahead)
                AheadDriver(engine, ahead, capacity, depth).run()
            else:
                drive_pool(engine, lane, capacity, queue_depth=depth)
        finally:
            lane.close(wait=False)
        _gather_outputs(engine)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop :meth:`submit`'s calls as asked, and close the client if this executor made it.

        Idempotent. Results kept on the cluster by earlier runs can no longer be read once an
        owned client is closed.
        """
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait and not cancel_futures)
        if self._owned:
            self._owned = False
            self.client.close()


def _gather_outputs(engine: Engine) -> None:
    """After the run: bring the outputs (results nothing in the run depends on) here at once.

    The run has ended, so nothing else touches its results. If the batch cannot be fetched the
    results stay remote, and reading one raises the reason.
    """
    n, children, results = engine.n, engine.children, engine.results
    outputs: list[int] = []
    remotes: list[Remote] = []
    for i in range(n):
        value = results[i]
        if type(value) is DaskResult and not any(c < n for c in children[i]):
            outputs.append(i)
            remotes.append(value)
    if not outputs:
        return
    try:
        values = DaskResult.fetch_many(remotes)
    except ResultUnavailableError as error:
        logger.warning("workflow %r: outputs left on the cluster: %s", engine.run.workflow, error)
        return
    for i, value in zip(outputs, values, strict=True):
        results[i] = value


publish(__name__)  # last: every exported class above exists
