"""Look-ahead on Dask: calls sent before their dependencies finish, adopted when they do.

The engine submits a task once its dependencies are done, so on a cluster every dependency
level costs a round trip through this process (worker -> scheduler -> client -> scheduler ->
worker). With worker processes that round trip is most of the difference between a run and
raw ``client.submit`` of the whole graph. Look-ahead hides it: a task whose dependencies have
all been *sent* (their calls are on the cluster) is sent too, with their futures as its
arguments, so the scheduler starts it the moment they finish. The engine still decides:

* **Nothing is decided early.** A look-ahead call is not an attempt: the task stays
  ``pending`` until the engine makes it ready (its dependencies completed, in the engine's
  view) and begins it as usual (attempt count, ``running``, callbacks). Then the lane
  *adopts* the look-ahead call as that attempt's call instead of sending a new one, and its
  outcome (already back, or still to come) is the attempt's outcome: success, retry, failure
  policy are the engine's, as for any call.
* **Only when it is exactly the call the engine would send.** A look-ahead call records the
  key of every future it was given; it is adopted only if each of those dependencies completed
  with that very future. A dependency that failed (and is retried), returned a subflow, or was
  sent again (``_dask``'s resend of a failed graph) leaves it stale: it is cancelled, and the
  task is sent afresh, or looked ahead again on the dependency's new call. A stale call never
  ran its function: Dask fails or cancels a call whose dependency failed or was cancelled, and
  on the worker :func:`_guarded` refuses to call the function when an argument is a subflow
  (which the engine runs here, not as an argument) or another refused call's marker.
* **Which tasks.** Only those whose first attempt the engine would send unconditionally with
  their dependencies' results as arguments: no ``when=``, no ``skip_if_upstream_skipped``, no
  ``limits=``, a function that takes every dependency's result (so each of them is an argument
  and Dask waits for it), no subflow or mapped task. Whole runs go without look-ahead when a
  task has a timeout (its clock must start when its call does, not behind calls sent ahead),
  ``limits=`` (a permit must not be held by a call queued behind them), a priority (Dask
  would not order them), ``cache=True`` or a ``store=`` (a committed result
  must settle a task without running it), mapped tasks, or when ``max_workers`` bounds the
  calls in flight.
* **Bounded.** At most ``budget`` look-ahead calls are out at once; tasks that qualify while
  the budget is spent wait for it, oldest first.
* **When the run stops** (fail-fast, a cancelled ``execute_async``) every look-ahead call not
  adopted is cancelled, and the run waits for it as for its calls in flight: one that never
  ran leaves its task ``cancelled``; one that had started ran on the calls its dependencies
  completed with, so its task is begun and settled with its outcome. On Ctrl-C the calls are
  cancelled and not waited for, as every call in flight.

Everything here runs on the driver's thread: outcomes reach it through the lane's outbox
(:meth:`AheadDriver.on_outcome`), so the state needs no lock.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from ._binding import NO_ARGS
from ._drivers import PoolDriver
from ._run import Remote
from ._status import TaskStatus
from ._subflow import NESTED, Nestable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from distributed import Future

    from ._dask import DaskLane
    from ._engine import Engine
    from ._lanes import Outcome

__all__ = ["AheadDriver", "AheadLane", "Guarded", "Refused", "looks_ahead"]

_PENDING = TaskStatus.PENDING
_COMPLETED = TaskStatus.COMPLETED
_SKIPPED = TaskStatus.SKIPPED

#: ``done[i]`` of a task whose completion left no future its dependants could have used.
_UNUSABLE = ""


class Refused:
    """What a look-ahead call returns when it refused to call its function (see the module
    docstring); never a task's result."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<refused look-ahead call>"


class Guarded:
    """A task's function as a look-ahead call runs it: on the worker, after Dask resolved the
    dependencies' futures into their values, it refuses to call the function with a subflow
    or a refused call's marker as an argument. Named after the function: Dask keys calls by
    their function's name and keeps statistics per key prefix."""

    __slots__ = ("__name__", "fn")

    def __init__(self, fn: Callable[..., Any], named: Callable[..., Any]) -> None:
        self.fn = fn
        self.__name__ = getattr(named, "__name__", "task")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, Nestable | Refused):
                return Refused()
        return self.fn(*args, **kwargs)


def looks_ahead(engine: Engine) -> bool:
    """Whether a run may send calls ahead at all (see the module docstring)."""
    from ._engine import Engine

    if type(engine) is not Engine:  # durable (store=, cache=True) or mapped runs
        return False
    return not any(t.timeout is not None or t.priority or t.limits for t in engine.tasks)


def _eligible(engine: Engine, j: int) -> bool:
    task, spec = engine.tasks[j], engine.specs[j]
    if task.when is not None or task.skip_if_upstream_skipped or task.limits:
        return False
    if spec is NO_ARGS or spec is NESTED or task.map_over is not None:
        return False
    bound = {*spec.positional, *(k for _, k in spec.keywords)}
    return len(bound) == len(engine.deps[j])  # Dask waits only for what the call is given


class _Ahead:
    """One look-ahead call, from its sending until it is adopted or dropped."""

    __slots__ = ("adopted", "dropped", "future", "keys", "outcome", "task", "token")

    def __init__(self, task: int, token: int, keys: tuple[tuple[int, object], ...]) -> None:
        self.task = task
        self.token = token
        #: ``(dependency, key of the future this call was given for it)``.
        self.keys = keys
        self.future: Future[Any] | None = None
        #: The outcome, when it came back before the call was adopted.
        self.outcome: Outcome | None = None
        #: The driver's token of the attempt that adopted it.
        self.adopted: int | None = None
        self.dropped = False


class AheadLane:
    """The pool driver's lane for a run with look-ahead: a :class:`DaskLane` underneath.

    ``send`` queues as the Dask lane does; ``flush`` adopts the look-ahead call of each queued
    call that has a valid one, sends the rest, then looks ahead from everything now sent.
    """

    def __init__(self, dask: DaskLane, engine: Engine, budget: int) -> None:
        self.outbox = dask.outbox
        #: The futures of the calls sent, by token (the Dask lane fills it; flush() takes).
        self._recent: dict[int, Future[Any]] = {}
        dask.recent = self._recent
        self._dask = dask
        self._engine = engine
        self._budget = budget
        n = engine.n
        self._n = n
        self._eligible = [_eligible(engine, j) for j in range(n)]
        #: The driver's calls in flight, token -> task (the driver's own dict, see bind()).
        self.inflight: dict[int, int] = {}
        self._tokens: Iterator[int] = iter(())
        self._sends: list[tuple[Any, ...]] = []
        #: The future each task's dependants would be given now (None: none to give).
        self._current: list[Future[Any] | None] = [None] * n
        #: The key of the future each task completed with (None: not completed yet).
        self.done: list[object] = [None] * n
        self._ahead: dict[int, _Ahead] = {}  # task -> its live look-ahead call
        self._by_token: dict[int, _Ahead] = {}  # look-ahead token -> call, until settled
        self._adopted: dict[int, _Ahead] = {}  # driver token -> the call it adopted
        self._waiting: deque[int] = deque()  # qualified while the budget was spent
        self._cancel: list[Future[Any]] = []
        #: Every look-ahead future, until the run ends. Dropping one would let the client
        #: release its key while calls sent ahead on it still wait; cancelling a call then
        #: walks its dependents into that unwanted key, and the scheduler fails an assertion
        #: (``assert ts.who_wants`` in ``stimulus_cancel``, distributed 2026.8) and drops
        #: this client's connection.
        self._held: list[Future[Any]] = []
        #: The guarded call of each task function, by id (the functions live in the tasks).
        self._guards: dict[int, Guarded] = {}

    def bind(self, driver: PoolDriver) -> None:
        """Share the driver's tokens and its record of calls in flight."""
        self.inflight = driver.inflight
        self._tokens = driver.tokens

    # -- the Lane protocol ---------------------------------------------------------------

    def send(
        self,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str,
        timeout: float | None,
    ) -> None:
        self._sends.append((token, fn, args, kwargs, name, timeout))

    def flush(self) -> None:
        sends, self._sends = self._sends, []
        dask, inflight, n = self._dask, self.inflight, self._n
        sent: list[tuple[int, int]] = []  # (task, token) of calls sent now
        newly: list[int] = []
        for call in sends:
            token = call[0]
            if call[5] is not None:  # a subflow's task with a timeout: its clock must not
                self._budget = 0  # tick behind calls sent ahead; none from now on
            i = inflight.get(token, n)
            ahead = self._ahead.pop(i, None) if i < n else None
            if ahead is not None:
                if self._valid(ahead):
                    self._adopt(ahead, token)
                    newly.append(i)
                    continue
                self._drop(ahead)
            dask.send(*call)
            sent.append((i, token))
        dask.flush()
        current, recent = self._current, self._recent
        for i, token in sent:
            future = recent.pop(token, None)
            if i < n:
                current[i] = future
                if future is not None:
                    newly.append(i)
        if self._engine.stopping:
            for ahead in list(self._ahead.values()):
                self._drop(ahead, cancel=True)
            self._waiting.clear()
        elif not self._budget:
            self._waiting.clear()
        elif newly or self._waiting:
            self._look_ahead(newly)
        if self._cancel:
            futures, self._cancel = self._cancel, []
            dask.cancel_futures(futures)

    def cancel(self, token: int) -> bool:
        for k, call in enumerate(self._sends):
            if call[0] == token:
                del self._sends[k]
                self.outbox.put((token, False, CancelledError()))
                return True
        ahead = self._adopted.get(token)
        if ahead is not None:
            if ahead.future is not None:
                self._dask.cancel_futures([ahead.future])
            return False
        return self._dask.cancel(token)

    def abandon(self, token: int) -> bool:
        return False

    def close(self, wait: bool) -> None:
        self._sends.clear()
        self._dask.close(wait)
        self._held.clear()  # nothing is cancelled from now on: the keys may go

    # -- outcomes (on the driver's thread) ------------------------------------------------

    def route(self, outcome: Outcome) -> Outcome | None:
        """What the driver should settle for ``outcome`` (None: nothing, it was a look-ahead
        call's, kept for its adoption or dropped)."""
        token, ok, value = outcome
        ahead = self._by_token.get(token)
        if ahead is None:  # the driver's own call
            i = self.inflight.get(token, self._n)
            if i < self._n:
                self._settled(i, ok, value)
            return outcome
        if ahead.adopted is not None:
            del self._by_token[token], self._adopted[ahead.adopted]
            self._settled(ahead.task, ok, value)
            return (ahead.adopted, ok, value)
        if ahead.dropped:
            del self._by_token[token]
            return None
        ahead.outcome = outcome
        if self._engine.statuses[ahead.task].is_terminal or self._stale(ahead):
            self._drop(ahead)  # e.g. a dependency failed for good: it will never be adopted
        return None

    def _settled(self, i: int, ok: bool, value: object) -> None:
        if ok and isinstance(value, Remote):  # a DaskResult: its future
            self.done[i] = getattr(value, "future").key  # noqa: B009 - Remote has no future
        else:  # a failure, or a subflow the engine runs here: no future stands for it
            self.done[i] = _UNUSABLE if ok else None
        self._current[i] = None

    # -- internals -----------------------------------------------------------------------

    def drain(self) -> list[_Ahead]:
        """The run stops: cancel every live look-ahead call (one message) and hand them to the
        driver, which waits for their outcomes."""
        live = list(self._ahead.values())
        self._ahead.clear()
        self._waiting.clear()
        futures = [a.future for a in live if a.outcome is None and a.future is not None]
        if futures:
            self._dask.cancel_futures(futures)
        for ahead in live:
            del self._by_token[ahead.token]
            ahead.dropped = True
        return live

    def valid(self, ahead: _Ahead) -> bool:
        """Whether every dependency completed with the very future the call was given."""
        return self._valid(ahead)

    def _valid(self, ahead: _Ahead) -> bool:
        statuses, done = self._engine.statuses, self.done
        return all(statuses[d] is _COMPLETED and done[d] == key for d, key in ahead.keys)

    def _stale(self, ahead: _Ahead) -> bool:
        """A dependency completed with another future, or its future was replaced."""
        done, current = self.done, self._current
        for d, key in ahead.keys:
            if done[d] is not None:
                if done[d] != key:
                    return True
            else:
                future = current[d]
                if future is None or future.key != key:
                    return True
        return False

    def _adopt(self, ahead: _Ahead, token: int) -> None:
        ahead.adopted = token
        self._adopted[token] = ahead
        self._current[ahead.task] = ahead.future
        if ahead.outcome is not None:  # already back: the driver reads it next
            del self._by_token[ahead.token], self._adopted[token]
            _, ok, value = ahead.outcome
            self.outbox.put((token, ok, value))

    def _drop(self, ahead: _Ahead, cancel: bool = False) -> None:
        """Forget a look-ahead call. A stale one needs no cancelling: a dependency it was
        given failed or was cancelled (Dask will not run it), or returned a subflow (it
        refuses on the worker). A live one, when the run stops, does (``cancel``)."""
        if ahead.adopted is not None or ahead.dropped:
            return
        ahead.dropped = True
        if self._ahead.get(ahead.task) is ahead:
            del self._ahead[ahead.task]
        if self._current[ahead.task] is ahead.future:
            self._current[ahead.task] = None
        if ahead.outcome is not None:
            del self._by_token[ahead.token]
        elif cancel and ahead.future is not None:
            self._cancel.append(ahead.future)

    def _look_ahead(self, newly: list[int]) -> None:
        """Send, level by level, the tasks whose dependencies have all been sent."""
        engine, eligible, n = self._engine, self._eligible, self._n
        children, waiting = engine.children, self._waiting
        candidates = list(waiting)
        waiting.clear()
        for i in newly:
            candidates.extend(c for c in children[i] if c < n and eligible[c])
        while candidates:
            batch: list[_Ahead] = []
            seen: set[int] = set()
            for j in candidates:
                if j in seen:
                    continue
                seen.add(j)
                if len(self._ahead) + len(batch) >= self._budget:
                    waiting.append(j)
                    continue
                ahead = self._send_ahead(j)
                if ahead is not None:
                    batch.append(ahead)
            if not batch:
                return
            self._dask.flush()  # one graph per level: its calls name the previous level's
            candidates = []
            recent = self._recent
            for ahead in batch:
                future = recent.pop(ahead.token, None)
                if future is None:  # it could not be sent: the task is sent when ready
                    ahead.dropped = True  # its outcome (the error) is swallowed by route()
                    continue
                ahead.future = future
                self._held.append(future)
                self._current[ahead.task] = future
                self._ahead[ahead.task] = ahead
                candidates.extend(c for c in children[ahead.task] if c < n and eligible[c])

    def _send_ahead(self, j: int) -> _Ahead | None:
        """Queue task ``j``'s look-ahead call if its dependencies have all been sent."""
        engine = self._engine
        statuses = engine.statuses
        if statuses[j] is not _PENDING or engine.attempts[j] or not engine.pending[j]:
            return None  # begun already, settled, or ready: the driver sends it
        old = self._ahead.get(j)
        if old is not None:
            if not self._stale(old):
                return None
            self._drop(old)
        results, current = engine.results, self._current
        deps = engine.deps[j]
        values: list[object] = []
        keys: list[tuple[int, object]] = []
        for d in deps:
            status = statuses[d]
            if status is _COMPLETED or status is _SKIPPED:  # its result is final
                values.append(results[d])
                continue
            future = current[d]
            if future is None:
                return None
            values.append(future)
            keys.append((d, future.key))
        spec = engine.specs[j]
        args = tuple([values[k] for k in spec.positional])
        kwargs = {name: values[k] for name, k in spec.keywords} if spec.keywords else None
        task = engine.tasks[j]
        token = next(self._tokens)
        ahead = _Ahead(j, token, tuple(keys))
        self._by_token[token] = ahead
        fn = task._call_fn()  # what begin() calls (retry_if_result's judge too)
        call = self._guards.get(id(fn))
        if call is None:  # one per function: a graph pickles a shared object once
            call = self._guards[id(fn)] = Guarded(fn, task.fn)
        self._dask.send(token, call, args, kwargs, task.name, None)
        return ahead


class AheadDriver(PoolDriver):
    """The pool driver over an :class:`AheadLane`: outcomes are routed through the lane, which
    turns a look-ahead call's outcome into its adopting attempt's (see the module docstring).
    """

    __slots__ = ("ahead", "draining")

    def __init__(self, engine: Engine, lane: AheadLane, capacity: int | None, depth: int) -> None:
        super().__init__(engine, lane, capacity, depth)
        self.ahead = lane
        #: Look-ahead calls cancelled when the run stopped, by token, until their outcome.
        self.draining: dict[int, _Ahead] = {}
        lane.bind(self)

    def on_outcome(self, outcome: Outcome) -> None:
        ahead = self.draining.pop(outcome[0], None)
        if ahead is not None:
            del self.inflight[ahead.token]
            self.settle_drained(ahead, outcome)
            return
        routed = self.ahead.route(outcome)
        if routed is not None:
            super().on_outcome(routed)

    def on_stop(self) -> None:
        """Cancel the look-ahead calls too, and wait for them as for the calls in flight: one
        that had started when the run stopped ran, and is recorded as it ended."""
        super().on_stop()
        for ahead in self.ahead.drain():
            if ahead.outcome is not None:
                self.settle_drained(ahead, ahead.outcome)
            else:
                self.draining[ahead.token] = ahead
                self.inflight[ahead.token] = ahead.task  # the run waits for it

    def settle_drained(self, ahead: _Ahead, outcome: Outcome) -> None:
        """A look-ahead call of a stopping run came back: if it ran on the very calls its
        dependencies completed with, its task is begun and settled with its outcome (so the
        record says what ran); otherwise it never ran, and its task ends ``cancelled``."""
        engine, j = self.engine, ahead.task
        _, ok, value = outcome
        if engine.statuses[j] is not _PENDING or (not ok and isinstance(value, CancelledError)):
            return
        if ok and getattr(getattr(value, "future", None), "type", None) is Refused:
            return  # it refused to call the function
        if not engine.pending[j] and self.ahead.valid(ahead):
            engine.begin(j)  # its call is the one that ran
            if ok:
                engine.succeed(j, value)
            else:
                self.timers.add(engine, j, engine.fail(j, value))  # stopping: no retry
        elif ok:  # it ran, but a dependency's call was cancelled as it finished: the attempt
            engine.begin(j)  # was made, its result is discarded
            engine.cancel(j)
        # An error with a dependency that did not complete is that dependency's (Dask fails a
        # call whose dependency failed without running it): nothing ran.
