"""Concurrency slots and rate windows, shared by threads and coroutines.

A :class:`Limiter` grants *permits*. A permit holds one concurrency slot (when the limiter has
a ``concurrency``) until it is released, and spends ``amount`` tokens of every rate window
(when it has rates); tokens come back on their own one ``per`` after they were spent. Rate
windows are exact sliding windows (a log of grants), not leaky buckets: in *any* interval of
``per`` seconds at most ``limit`` tokens are granted, bursts included.

Design:

- **One lock, one FIFO queue.** State lives under a ``threading.Lock``; callers that cannot be
  served at once join a FIFO queue of waiters, and only the head of the queue may take a permit.
  A new caller never overtakes a queued one (no starvation, no barging), so a caller asking for
  many tokens is not starved by a stream of small ones.
- **No polling.** A waiter that lacks a slot sleeps on its own event until a release wakes it;
  the head of the queue, when only a rate window stands in its way, knows exactly when the
  oldest tokens expire and sleeps that long through the :class:`~flowweaver.Clock` (so an
  injected clock drives rate waits in tests). Whoever leaves the head (granted or cancelled)
  wakes the next waiter.
- **Threads and event loops together.** A thread waits on a ``threading.Event``; a coroutine on
  an ``asyncio.Event`` of its own loop, set through ``call_soon_threadsafe``. One limiter may be
  shared by workflows and pipelines running at the same time on threads and on several loops.
- **Schedulers queue too.** The workflow engine keeps a task that waits for a limiter
  ``pending`` without a thread: it takes a place in the same FIFO queue (``_gates.Ticket``,
  through :meth:`Limiter._take_for`) and is woken like any waiter, so tasks and ``with`` /
  ``async with`` callers are served in the order they came. The one exception keeps a
  sequential run alive: a thread blocked in ``with limiter:`` does not wait behind the
  parked tasks of the run it drives itself (they cannot move before it returns).
  :meth:`Limiter._refund` undoes a permit whose call never ran (another of its limiters
  refused), so a task needing several limiters takes all of them or none.
  :meth:`Limiter.try_acquire` remains for other non-blocking schedulers; it does not queue.

The rate windows and the queued callers are ``_limiter_parts``; the adaptive controller
(AIMD) is ``_aimd``, which this class feeds with outcomes and whose answers it applies.

A limiter only limits inside one process: worker processes and cluster machines each see their
own copy. Hold it where the calls are decided (the client-side engine of a Dask run) to keep one
limit.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Self

from ._aimd import Aimd, check_adaptive
from ._checks import check_count, check_number
from ._clock import Clock, SystemClock
from ._errors import ConfigurationError
from ._limiter_parts import (
    WAIT_FOR_RELEASE,
    LimiterStatistics,
    LoopWaiter,
    Rate,
    ThreadWaiter,
    Waiter,
    Window,
    parse_rates,
)
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from ._aimd import ThrottleOn

__all__ = ["Grant", "Limiter", "LimiterStatistics", "Rate"]

#: A permit's record in the rate windows, ``(granted at, amount)`` (see ``Limiter._refund``).
Grant = tuple[float, float]
#: The grant of a limiter without rate windows: only its slot to give back.
_NO_WINDOW: Grant = (math.nan, 0.0)


class Limiter:
    """Concurrency slots and rate windows, for threads and coroutines alike.

    Examples:
        >>> api = Limiter(concurrency=5, rate=10, per=1.0, name="api")
        >>> with api:          # a slot and a token, the slot released at the end of the block
        ...     pass
        >>> api.has_capacity()
        True

    ``async with api:`` does the same on an event loop. One limiter may be shared by any number
    of threads, event loops, workflows and pipelines of one process.

    Args:
        concurrency: At most this many permits held at once (None: no slot limit).
        rate: Tokens per window: a number (with ``per``), or a sequence of :class:`Rate` for
            several windows at once (e.g. 10 per second and 500 per minute). None: no rate.
        per: The window of a numeric ``rate``, in seconds.
        name: Shown in its ``repr`` and in error messages.
        clock: Where rate waits come from; the real clock by default (tests inject one).
        adaptive: Throttle itself to what a remote service takes (AIMD): each call that
            fails with a ``throttle_on`` error multiplies the concurrency and every rate by
            0.9 (once per window, or per calls in flight, so one burst of rejections is one
            decrease); each success adds one unit back over a level's worth of calls. Never
            above the given values, never below 1 slot and 1 token a window. Outcomes come from
            ``with``/``async with`` blocks, ``Stage(limits=...)`` calls, or :meth:`record`.
        throttle_on: With ``adaptive``: the exception types (429/503-like), or a predicate on
            the exception, that mean "slow down".

    Invariants: never more than ``concurrency`` holders; in any interval of ``per`` seconds,
    never more than ``limit`` tokens granted per window; callers are served first come, first
    served; a waiting caller uses no CPU (it sleeps on an event, or on the clock until the
    exact moment the oldest tokens expire).

    Raises:
        ConfigurationError: A non-positive or non-numeric concurrency, rate or period;
            ``adaptive`` without ``throttle_on`` or without a limit to adapt.
    """

    __slots__ = (
        "_aimd",
        "_clock",
        "_concurrency",
        "_granted",
        "_holders",
        "_listeners",
        "_lock",
        "_max_amount",
        "_max_concurrency",
        "_rates",
        "_waiters",
        "_windows",
        "name",
    )

    def __init__(
        self,
        concurrency: int | None = None,
        rate: float | Sequence[Rate] | None = None,
        per: float = 1.0,
        name: str | None = None,
        *,
        adaptive: bool = False,
        throttle_on: ThrottleOn = (),
        clock: Clock | None = None,
    ) -> None:
        owner = "Limiter" if name is None else f"Limiter {name!r}"
        if concurrency is not None:
            check_count(owner, "concurrency", concurrency, minimum=1)
        if name is not None and not isinstance(name, str):
            raise ConfigurationError(f"Limiter: name must be a str, got {name!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(f"{owner}: clock must implement Clock, got {clock!r}")
        self._rates = parse_rates(owner, rate, per)
        self._concurrency = concurrency
        self.name = name
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._windows = tuple(Window(r) for r in self._rates)
        self._max_amount = min((r.limit for r in self._rates), default=math.inf)
        self._waiters: deque[Waiter] = deque()
        self._holders = 0
        self._granted = 0
        #: Called (outside the lock) after each release: schedulers waiting without a thread.
        self._listeners: list[Callable[[], object]] = []
        self._max_concurrency = concurrency
        #: The adaptive controller (``_aimd``), or None.
        self._aimd: Aimd | None = None
        if check_adaptive(owner, adaptive, throttle_on, concurrency, bool(self._rates)):
            unit = concurrency if concurrency is not None else self._rates[0].limit
            window = min((r.per for r in self._rates), default=None)
            self._aimd = Aimd(throttle_on, float(unit), window)

    @property
    def concurrency(self) -> int | None:
        """The slot limit, or None."""
        return self._concurrency

    @property
    def rates(self) -> tuple[Rate, ...]:
        """The rate windows, possibly none."""
        return self._rates

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}"] if self.name is not None else []
        if self._concurrency is not None:
            parts.append(f"concurrency={self._concurrency}")
        parts += [f"rate={r.limit:g}/{r.per:g}s" for r in self._rates]
        return f"Limiter({', '.join(parts)})"

    def statistics(self) -> LimiterStatistics:
        """Holders, waiters and permits granted so far."""
        with self._lock:
            return LimiterStatistics(self._holders, len(self._waiters), self._granted)

    # --- non-blocking ------------------------------------------------------------------------

    def has_capacity(self, amount: float = 1) -> bool:
        """Whether a permit costing ``amount`` tokens would be granted now, without taking it.

        False while other callers are queued (they come first) or when ``amount`` exceeds a
        window's whole limit.
        """
        tokens = check_number(repr(self), "amount", amount)
        if any(tokens > rate.limit for rate in self._rates):
            return False
        with self._lock:
            return not self._waiters and self._delay(tokens, self._now()) == 0.0

    def acquire_nowait(self, amount: float = 1) -> bool:
        """Take a permit if one is free now and nobody is queued; never waits."""
        amount = self._check_amount(amount)
        with self._lock:
            return not self._waiters and self._grant(amount) == 0.0

    def try_acquire(self, amount: float = 1) -> float:
        """Take a permit now (returns 0.0) or say how long to wait before asking again.

        The building block for schedulers that must not block: returns the seconds until a
        rate window frees enough tokens, or ``math.inf`` when only a release can help (then
        wait for :meth:`notify` callbacks, or just retry after a release). Unlike
        :meth:`acquire_nowait` it ignores the queue of blocked callers; use one or the other.
        """
        amount = self._check_amount(amount)
        with self._lock:
            return self._grant(amount)

    def release(self) -> None:
        """Give back the slot of one permit (a no-op without ``concurrency``).

        Raises:
            RuntimeError: More releases than permits granted.
        """
        if self._concurrency is None:
            return
        with self._lock:
            if self._holders <= 0:
                raise RuntimeError(f"{self!r}: release() without a matching acquire")
            self._holders -= 1
            if self._waiters:
                self._wake_head()
        if self._listeners:
            for listener in tuple(self._listeners):
                listener()

    # --- blocking: threads -------------------------------------------------------------------

    def acquire(self, amount: float = 1) -> None:
        """Block the calling thread until a permit costing ``amount`` tokens is granted.

        Raises:
            ConfigurationError: It would have to wait on a thread that runs an event loop
                (an ``async def`` task's ``with limiter:``): use ``async with`` there.
        """
        amount = self._check_amount(amount)
        with self._lock:
            if not self._waiters and self._grant(amount) == 0.0:
                return
            # Not loaded: no event loop can run here (and a threaded run never loads it).
            asyncio = sys.modules.get("asyncio")
            if (
                asyncio is not None and asyncio._get_running_loop() is not None
            ):  # waiting here would freeze the loop
                raise ConfigurationError(
                    f"{self!r}: acquire() (with) cannot wait on an event loop's thread: it "
                    "would block every coroutine; use acquire_async() (async with)"
                )
            waiter = ThreadWaiter(amount)
            self._waiters.append(waiter)
        try:
            while (delay := self._serve(waiter)) != 0.0:
                if delay == WAIT_FOR_RELEASE:
                    waiter.event.wait()
                    waiter.event.clear()
                else:
                    self._clock.sleep(delay)
        except BaseException:
            self._leave(waiter)
            raise

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._aimd is not None:
            self.record(exc)
        self.release()

    # --- blocking: coroutines ----------------------------------------------------------------

    async def acquire_async(self, amount: float = 1) -> None:
        """Suspend the calling coroutine until a permit costing ``amount`` tokens is granted.

        Cancelling the wait leaves the queue cleanly (the next caller is woken).
        """
        amount = self._check_amount(amount)
        with self._lock:
            if not self._waiters and self._grant(amount) == 0.0:
                return
            waiter = LoopWaiter(amount)
            self._waiters.append(waiter)
        try:
            while (delay := self._serve(waiter)) != 0.0:
                if delay == WAIT_FOR_RELEASE:
                    await waiter.event.wait()
                    waiter.event.clear()
                else:
                    await self._clock.sleep_async(delay)
        except BaseException:
            self._leave(waiter)
            raise

    async def __aenter__(self) -> Self:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._aimd is not None:
            self.record(exc)
        self.release()

    # --- adaptive throttling -----------------------------------------------------------------

    @property
    def adaptive(self) -> bool:
        """Whether the limiter adapts its limits to ``throttle_on`` failures."""
        return self._aimd is not None

    def current_limits(self) -> tuple[int | None, tuple[Rate, ...]]:
        """The concurrency and rates in force now (below the given ones while throttled)."""
        with self._lock:
            return self._concurrency, tuple(Rate(w.limit, w.per) for w in self._windows)

    def record(self, error: BaseException | None) -> None:
        """Feed one call's outcome to an adaptive limiter (None: it succeeded).

        A ``throttle_on`` error lowers the limits (multiplicative decrease), a success raises
        them (additive increase); other errors, and interrupts, change nothing. A no-op on a
        limiter that is not adaptive. ``with``/``async with`` blocks call it for you.
        """
        aimd = self._aimd
        if aimd is None or (error is not None and not isinstance(error, Exception)):
            return
        throttled = error is not None and aimd.is_throttle(error, self)
        if error is not None and not throttled:
            return
        with self._lock:
            scale = aimd.throttled(self._now(), self._holders) if throttled else aimd.succeeded()
            if scale is not None:
                self._apply(scale)

    def _apply(self, scale: float) -> None:
        """Set the limits in force to ``scale`` of the given ones, under the lock."""
        most = self._max_concurrency
        if most is not None:
            before = self._concurrency
            self._concurrency = max(1, int(most * scale + 1e-9))
            if before is not None and self._concurrency > before and self._waiters:
                self._wake_head()
        for window, rate in zip(self._windows, self._rates, strict=True):
            window.limit = max(min(1.0, rate.limit), rate.limit * scale)

    def add_listener(self, listener: Callable[[], object]) -> None:
        """Call ``listener()`` after every release (from the releasing thread; keep it short).

        For schedulers that wait for a slot without a thread of their own and use
        :meth:`try_acquire`.
        """
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Callable[[], object]) -> None:
        """Stop calling ``listener`` (a no-op if it was not added)."""
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def notify(self) -> None:
        """Wake the first queued caller so it checks again (after an outside state change)."""
        with self._lock:
            if self._waiters:
                self._wake_head()

    # --- the rules, under the lock -----------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now() if self._windows else 0.0

    def _delay(self, amount: float, now: float) -> float:
        if self._concurrency is not None and self._holders >= self._concurrency:
            return WAIT_FOR_RELEASE
        delay = 0.0
        for window in self._windows:
            window.expire(now)
            delay = max(delay, window.delay_for(amount, now))
        return delay

    def _grant(self, amount: float) -> float:
        """Grant a permit if the rules allow it now (0.0), or say how long until they might."""
        now = self._now()
        delay = self._delay(amount, now)
        if delay > 0.0:
            return delay
        entry = (now, amount)  # one record in every window: a refund finds it in each
        for window in self._windows:
            window.grants.append(entry)
            window.used += amount
        if self._concurrency is not None:
            self._holders += 1
        self._granted += 1
        return 0.0

    def _serve(self, waiter: Waiter) -> float:
        """One turn of a queued caller: granted (0.0), or how long it should wait."""
        with self._lock:
            waiters = self._waiters
            head = waiters[0] is waiter
            if not head and not self._is_next(waiter):
                return WAIT_FOR_RELEASE
            delay = self._grant(waiter.amount)
            if delay == 0.0:
                if head:
                    waiters.popleft()
                else:
                    waiters.remove(waiter)
                if waiters:
                    self._wake_head()
            return delay

    def _is_next(self, waiter: Waiter) -> bool:
        """Whether ``waiter`` may take the next permit: it is the head of the queue, or
        everyone ahead of it waits for its own thread (the parked tasks of a run this
        thread drives, which cannot move before it returns: waiting behind them would
        deadlock a sequential run's ``with limiter:``)."""
        thread = waiter.thread
        for ahead in self._waiters:
            if ahead is waiter:
                return True
            if thread is None or ahead.thread != thread:
                return False
        return False

    def _leave(self, waiter: Waiter) -> None:
        """A queued caller gives up (cancelled, interrupted): let the next one try."""
        with self._lock:
            try:
                head = self._waiters[0] is waiter
                self._waiters.remove(waiter)
            except (IndexError, ValueError):  # already served: the permit is the caller's
                return
            if head and self._waiters:
                self._wake_head()

    def _drop(self, gone: Callable[[Waiter], bool]) -> None:
        """Remove the queued callers ``gone`` picks (a stopping run's parked tasks: they will
        never take a permit) and wake whoever is first now. ``gone`` runs under the lock."""
        with self._lock:
            waiters = self._waiters
            if not waiters:
                return
            head = waiters[0]
            kept = [waiter for waiter in waiters if not gone(waiter)]
            if len(kept) == len(waiters):
                return
            waiters.clear()
            waiters.extend(kept)
            if waiters and waiters[0] is not head:
                self._wake_head()

    def _wake_head(self) -> None:
        """Wake the first queued caller; drop those that are gone (a stopping run's tasks).

        When the head waits for a thread, the callers of that same thread right behind it
        are woken too: they may go first (see :meth:`_is_next`).
        """
        waiters = self._waiters
        while waiters and not waiters[0].wake():
            waiters.popleft()
        thread = waiters[0].thread if waiters else None
        if thread is not None and len(waiters) > 1:
            for behind in itertools.islice(waiters, 1, None):
                if behind.thread != thread:
                    break
                behind.wake()

    # --- for schedulers that never block (the engine's ``_gates``) ---------------------------

    def _take_for(self, waiter: Waiter, queued: bool) -> tuple[float, Grant | None]:
        """Take a permit for ``waiter`` now, first come, first served with blocked callers.

        ``queued``: the waiter is in this limiter's queue already (from an earlier refusal).
        Returns ``(0.0, grant)`` (the grant is what :meth:`_refund` gives back), or
        ``(delay, None)``: refused, and the waiter is queued (it keeps its place); it is woken
        through ``waiter.wake()`` when it reaches the head of the queue and a release may
        let it in; ``delay`` is how long its rate makes it wait (``inf``: until a release).
        """
        with self._lock:
            waiters = self._waiters
            if waiters and not (queued and (waiters[0] is waiter or self._is_next(waiter))):
                if not queued:
                    waiters.append(waiter)  # behind everyone who came first
                return WAIT_FOR_RELEASE, None
            delay = self._grant(waiter.amount)
            if delay != 0.0:
                if not queued:
                    waiters.append(waiter)
                return delay, None
            grant = self._windows[0].grants[-1] if self._windows else _NO_WINDOW
            if queued:
                with contextlib.suppress(ValueError):  # dropped meanwhile (see _drop)
                    waiters.remove(waiter)
                if waiters:
                    self._wake_head()
            return 0.0, grant

    def _refund(self, grant: Grant) -> None:
        """Undo a permit granted by :meth:`_take_for` whose call never ran (another limiter of
        the same call refused): its slot and its tokens come back, as if never granted."""
        with self._lock:
            if grant is not _NO_WINDOW:
                for window in self._windows:
                    with contextlib.suppress(ValueError):  # expired meanwhile: nothing to undo
                        window.grants.remove(grant)
                        window.used = max(window.used - grant[1], 0.0)
            if self._concurrency is not None:
                self._holders -= 1
            self._granted -= 1
            if self._waiters:
                self._wake_head()
        if self._listeners:
            for listener in tuple(self._listeners):
                listener()

    def _check_amount(self, amount: object) -> float:
        """The amount as a float; an error when it can never fit."""
        if type(amount) is int and 0 <= amount <= self._max_amount:  # the common case, fast
            return amount
        owner = repr(self)
        value = check_number(owner, "amount", amount)
        for rate in self._rates:
            if value > rate.limit:
                raise ConfigurationError(
                    f"{owner}: amount {amount!r} can never fit a window of "
                    f"{rate.limit:g} per {rate.per:g}s"
                )
        return value


publish(__name__)  # last: every exported class above exists
