"""The Task: what to call, how to retry it, how long it may take, when to skip it.

A Task is a frozen definition. What happens to it in a run (status, result, error, attempts)
belongs to that run (:class:`~flowweaver.WorkflowRun`); ``task.status``, ``task.result`` and
``task.error`` show the task's state in the most recent run that included it, as the seeds do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import FrozenInstanceError, dataclass, replace
from inspect import CO_COROUTINE
from types import FunctionType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    runtime_checkable,
)

from . import _scope
from ._binding import Params, is_coroutine_callable, params_of
from ._checks import check_number
from ._errors import ConfigurationError
from ._retry import RetryPolicy, check_retry_fields, judged
from ._status import TaskStatus

if TYPE_CHECKING:
    from ._limiter import Limiter
    from ._run import WorkflowRun
    from ._store import MemoryStore
    from ._subflow import Nestable

__all__ = ["ONLY_UPSTREAM", "Task"]


class _OnlyUpstream(tuple[str, ...]):
    """``map_over`` of ``task.map()`` without names: the task's only upstream, whichever it
    is (resolved, or refused, when the task is added to a workflow)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<the only upstream>"


ONLY_UPSTREAM: tuple[str, ...] = _OnlyUpstream()

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
#: What ``>>`` and ``<<`` accept on their right: a task or a list of tasks. (A list literal of
#: tasks with different signatures is ``list[object]`` to mypy; the elements are checked at
#: run time.)
_Linkable = TypeVar("_Linkable", bound="Task[..., Any] | Nestable | Sequence[object]")

StatusCallback = Callable[[str, TaskStatus], object]
RetryCallback = Callable[[str, int], object]


_DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (Exception,)
_DEFAULT_RETRY_FIELDS = (0, 1.0, 2.0, 60.0, 0.1, _DEFAULT_RETRY_ON)
_DEFAULT_RETRY_TYPES = tuple(map(type, _DEFAULT_RETRY_FIELDS))
#: The fields a task rarely sets, with their defaults: kept in ``Task._options`` only when
#: set (see :class:`_Option`). The order is the fields' order in ``Task``.
_OPTION_DEFAULTS: dict[str, object] = {
    "retries": 0,
    "on_retry": None,
    "depends_on": (),
    "delay": 1.0,
    "backoff": 2.0,
    "max_delay": 60.0,
    "jitter": 0.1,
    "retry_on": _DEFAULT_RETRY_ON,
    "cache": False,
    "cache_ttl": None,
    "cache_key": None,
    "map_over": None,
    "map_limit": None,
    "keep_results": True,
    "allow_failed_elements": False,
    "retry_if": None,
    "retry_after": None,
    "priority": 0,
    "retry_if_result": None,
}
_OPTION_VALUES = tuple(_OPTION_DEFAULTS.values())
_OPTION_TYPES = tuple(map(type, _OPTION_VALUES))


class _Option:
    """A field of :class:`Task` that most tasks leave at its default.

    A million tasks should not each carry seventeen slots of defaults: the values a task sets
    live in its ``_options`` dict (None when it sets none), and reading the field falls back
    to the default. To ``dataclasses`` this is a descriptor-typed field (its default is what
    the class-level read returns), so ``fields()``, ``replace()`` and the repr see it as any
    other field.
    """

    __slots__ = ("default", "name")

    def __init__(self, default: object) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, task: Task[..., Any] | None, owner: type | None = None) -> Any:
        if task is None:
            return self.default
        options = task._options
        return self.default if options is None else options.get(self.name, self.default)

    def __set__(self, task: Task[..., Any], value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {self.name!r}")


def _option(default: T) -> T:
    """A rarely set field (see :class:`_Option`), typed as its value."""
    return _Option(default)  # type: ignore[return-value]


@dataclass(frozen=True, eq=False, init=False)
class Task(Generic[P, R]):
    """A unit of work: a sync or async callable plus how to run it.

    Examples:
        >>> extract = Task(name="extract", fn=lambda: [1, 2, 3], retries=2, timeout=5.0)
        >>> extract()  # calling a task calls its function
        [1, 2, 3]

    Lifecycle: a Task is immutable once built; add it to a :class:`~flowweaver.Workflow` (or
    connect it with ``>>``) and run it with an executor. The same Task may be part of several
    workflows and runs; each run keeps its own state. :attr:`status`, :attr:`result` and
    :attr:`error` (the seeds' accessors) read the run that began most recently: with two runs
    of one Task at once, that is whichever began last, and it can change under you; read
    the :class:`~flowweaver.WorkflowRun` each run returns instead (``run.status(name)``).

    Args:
        name: Unique name in its workflow; downstream parameters with this name receive its
            result.
        fn: The callable. May be ``async``, or return an awaitable (which is awaited).
        retries: Extra attempts after a failure (0 = run once).
        timeout: Seconds one attempt may take, or None. See the executors for what a timeout
            can stop: async calls are cancelled, process calls killed, thread calls abandoned.
        on_status_change: Called as ``(name, status)`` on every status change.
        on_retry: Called as ``(name, retry)`` before each retry; ``retry`` counts the retries
            (1 for the first), so it never exceeds ``retries``.
        depends_on: Names this task needs, used when ``Workflow.add_task`` is given none.
        delay: Seconds before the first retry.
        backoff: Multiplier of the delay after each retry.
        max_delay: Cap of any retry delay.
        jitter: Relative random spread of each delay (0 to 1), clamped to ``max_delay``.
        retry_on: Exception types that are retried; others fail at once, and so do the
            failures that cannot succeed on retry (a call that cannot be sent to a process:
            ``TransferError``, ``ExecutorShutdownError``).
        when: Predicate called with the task's inputs; the task is skipped when it is falsy.
        skip_if_upstream_skipped: Skip this task when every one of its upstream tasks was
            skipped, instead of running it with ``None`` inputs.
        cache: Reuse a stored result when the task's code and inputs match one stored
            earlier (in the run's ``store=``, else in memory on this Task for the life of the
            process). See "State, resume and caching" in the README.
        cache_ttl: Seconds a cached result stays usable (None: until deleted). Needs
            ``cache=True``.
        cache_key: Called with the task's inputs, returns the str that identifies them in the
            cache, for inputs that cannot be serialized (or are expensive to). Needs
            ``cache=True``.
        map_over: Make this a *mapped task*: the name of the upstream task (or a sequence of
            names, zipped) whose result's elements it runs on, one call per element; the
            task's result is the list of the calls' results, in element order. Other
            upstream results are passed whole to every call. Each element is its own attempt
            with this task's retries, timeout and ``when``. See "Dynamic workflows" in the
            guide, and :meth:`map`.
        map_limit: Most elements of this mapped task running at once (default: as many as
            the executor runs).
        keep_results: False makes a mapped task drop its element results as they are
            passed on; its result is then the number of elements that completed (for long
            streams in flat memory).
        allow_failed_elements: A mapped task whose elements fail for good completes anyway
            (``None`` in their places) instead of failing; the failures are recorded in
            ``run.elements(name)``.
        retry_if: ``(error) -> bool``, asked after ``retry_on`` lets a failure through: a
            false answer makes it final (retry a 429, not a 404). If the predicate raises,
            its exception is the task's failure (logged once, never retried).
        retry_after: ``(error) -> seconds | None``: the wait a failure asks for (a server's
            ``Retry-After``); by default the failure's ``retry_after`` attribute, if any. The
            next wait is then at least that long, capped by ``max_delay``.
        retry_if_result: ``(result) -> bool``: a true answer counts a returned value as a
            failure (an HTTP client's 429 response): the attempt fails with
            :class:`~flowweaver.RejectedResultError` (``.value`` is the result) and is retried
            while retries are left, whatever ``retry_on`` and ``retry_if`` say; the last one
            is the task's failure. If the predicate raises, its exception is the task's
            failure (logged once, never retried). It runs where the call runs (so on
            :class:`~flowweaver.ProcessExecutor` it must pickle, as ``fn`` must).
        priority: When several tasks are ready and workers are short, a **higher** priority
            starts first (negative values run last); equal priorities keep the order the
            tasks became ready. A mapped task's elements share it.
        limits: Shared :class:`~flowweaver.Limiter` objects: each attempt takes a slot and a
            token of each before it starts, and gives the slot back when it ends. A task
            waiting for one holds no worker and stays ``pending``. A mapped task's elements
            each take their own (an element waiting for one stays ``pending``).

    Raises:
        ConfigurationError: An argument has a bad value or type (the message names it).
    """

    # The fields a run reads for every task live in slots; the rest are _Option fields.
    __slots__ = (
        "_latest",
        "_options",
        "fn",
        "limits",
        "name",
        "on_status_change",
        "skip_if_upstream_skipped",
        "timeout",
        "when",
    )

    # Slots first (they have no class-level default: __init__ has them all), then the rest.
    name: str
    fn: Callable[P, R]
    timeout: float | None
    on_status_change: StatusCallback | None
    when: Callable[..., object] | None
    skip_if_upstream_skipped: bool
    limits: Sequence[Limiter]
    retries: int = _option(0)
    on_retry: RetryCallback | None = _option(None)
    depends_on: Sequence[str] = _option(())
    delay: float = _option(1.0)
    backoff: float = _option(2.0)
    max_delay: float = _option(60.0)
    jitter: float = _option(0.1)
    retry_on: tuple[type[BaseException], ...] = _option(_DEFAULT_RETRY_ON)
    cache: bool = _option(False)
    cache_ttl: float | None = _option(None)
    cache_key: Callable[..., str] | None = _option(None)
    map_over: str | Sequence[str] | None = _option(None)
    map_limit: int | None = _option(None)
    keep_results: bool = _option(True)
    allow_failed_elements: bool = _option(False)
    retry_if: Callable[[BaseException], object] | None = _option(None)
    retry_after: Callable[[BaseException], object] | None = _option(None)
    priority: int = _option(0)
    retry_if_result: Callable[[Any], object] | None = _option(None)
    if TYPE_CHECKING:
        # Run-time links, never part of the definition (not fields: not compared, not
        # copied by replace()). `_options` holds the non-default _Option fields, and
        # "_memo", "_forms" (see below) once a task has them.
        _options: dict[str, Any] | None = None
        # The latest run: the run itself when the task is one of its workflow's own (found
        # there by name), (run, position) when it ran in a subflow of it.
        _latest: WorkflowRun | tuple[WorkflowRun, int] | None = None

    def __init__(
        self,
        name: str,
        fn: Callable[P, R],
        retries: int = 0,
        timeout: float | None = None,
        on_status_change: StatusCallback | None = None,
        on_retry: RetryCallback | None = None,
        depends_on: Sequence[str] = (),
        delay: float = 1.0,
        backoff: float = 2.0,
        max_delay: float = 60.0,
        jitter: float = 0.1,
        retry_on: tuple[type[BaseException], ...] = _DEFAULT_RETRY_ON,
        when: Callable[..., object] | None = None,
        skip_if_upstream_skipped: bool = False,
        cache: bool = False,
        cache_ttl: float | None = None,
        cache_key: Callable[..., str] | None = None,
        map_over: str | Sequence[str] | None = None,
        map_limit: int | None = None,
        keep_results: bool = True,
        allow_failed_elements: bool = False,
        retry_if: Callable[[BaseException], object] | None = None,
        retry_after: Callable[[BaseException], object] | None = None,
        priority: int = 0,
        limits: Sequence[Limiter] = (),
        retry_if_result: Callable[[Any], object] | None = None,
    ) -> None:
        put = object.__setattr__
        put(self, "name", name)
        put(self, "fn", fn)
        put(self, "timeout", timeout)
        put(self, "on_status_change", on_status_change)
        put(self, "when", when)
        put(self, "skip_if_upstream_skipped", skip_if_upstream_skipped)
        put(self, "limits", limits)
        put(self, "_latest", None)
        values = (
            retries, on_retry, depends_on, delay, backoff, max_delay, jitter, retry_on, cache,
            cache_ttl, cache_key, map_over, map_limit, keep_results, allow_failed_elements,
            retry_if, retry_after, priority, retry_if_result,
        )  # fmt: skip
        # Equal to the defaults and of their types (`delay=True` equals 1.0, and is refused):
        # a tuple compare is identity-first, so a task that sets nothing pays little.
        if values == _OPTION_VALUES and tuple(map(type, values)) == _OPTION_TYPES:
            put(self, "_options", None)
        else:
            put(
                self,
                "_options",
                {
                    label: value
                    for label, value, default in zip(
                        _OPTION_DEFAULTS, values, _OPTION_VALUES, strict=True
                    )
                    if value is not default
                },
            )
        self._check()

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(object.__getattribute__(self, slot) for slot in Task.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for slot, value in zip(Task.__slots__, state, strict=True):
            object.__setattr__(self, slot, value)

    def _remember(self, key: str, value: object) -> None:
        """Keep a run-time link (``_memo``, ``_forms``, ``_judged``, what ``params`` and
        ``is_async`` read of a callable that is not a plain function) in ``_options``, beside
        the options."""
        options = self._options
        if options is None:
            options = {}
            object.__setattr__(self, "_options", options)
        options[key] = value

    @property
    def _memo(self) -> MemoryStore | None:
        """The in-memory result cache of a cache=True task run without a store (see _durable)."""
        options = self._options
        return None if options is None else options.get("_memo")

    def _check(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"task name must be a non-empty str, got {name!r}")
        if not callable(self.fn):
            raise ConfigurationError(f"task {name!r}: fn must be callable, got {self.fn!r}")
        if self.timeout is not None:
            check_number(f"task {name!r}", "timeout", self.timeout, strict=True)
        if self.limits:
            self._check_limits()
        if self.on_status_change is not None or self.when is not None:
            for label in ("on_status_change", "when"):
                value = getattr(self, label)
                if value is not None and not callable(value):
                    raise ConfigurationError(
                        f"task {name!r}: {label} must be callable, got {value!r}"
                    )
        if self._options is not None:
            self._check_options()

    def _check_options(self) -> None:
        name = self.name
        if type(self.priority) is not int:
            raise ConfigurationError(
                f"task {name!r}: priority must be an int, got {self.priority!r}"
            )
        retry_fields = (
            self.retries, self.delay, self.backoff, self.max_delay, self.jitter, self.retry_on
        )  # fmt: skip
        if (
            retry_fields != _DEFAULT_RETRY_FIELDS
            or tuple(map(type, retry_fields)) != _DEFAULT_RETRY_TYPES
            or self.retry_if is not None
            or self.retry_after is not None
            or self.retry_if_result is not None
        ):
            check_retry_fields(
                f"task {name!r}", *retry_fields, self.retry_if, self.retry_after,
                self.retry_if_result,
            )  # fmt: skip
        if self.on_retry is not None and not callable(self.on_retry):
            raise ConfigurationError(
                f"task {name!r}: on_retry must be callable, got {self.on_retry!r}"
            )
        if self.cache is not False or self.cache_ttl is not None or self.cache_key is not None:
            self._check_cache_fields()
        if (
            self.map_over is not None
            or self.map_limit is not None
            or self.keep_results is not True
            or self.allow_failed_elements is not False
        ):
            self._check_map_fields()
        deps = self.depends_on
        if deps:
            if isinstance(deps, str) or not all(isinstance(d, str) and d for d in deps):
                raise ConfigurationError(
                    f"task {name!r}: depends_on must be a sequence of task names, got {deps!r}"
                )
            if type(deps) is not tuple:
                self._options["depends_on"] = tuple(deps)  # type: ignore[index]

    def _check_limits(self) -> None:
        from ._limiter import Limiter  # only a task given limits loads them

        limits = self.limits
        if isinstance(limits, list | tuple):
            limits = tuple(limits)
            object.__setattr__(self, "limits", limits)
        if not isinstance(limits, tuple) or not all(isinstance(x, Limiter) for x in limits):
            raise ConfigurationError(
                f"task {self.name!r}: limits must be a sequence of Limiter, got {limits!r}"
            )

    def _check_cache_fields(self) -> None:
        owner = f"task {self.name!r}"
        if not isinstance(self.cache, bool):
            raise ConfigurationError(f"{owner}: cache must be a bool, got {self.cache!r}")
        if self.cache_ttl is not None:
            check_number(owner, "cache_ttl", self.cache_ttl, strict=True)
        if self.cache_key is not None and not callable(self.cache_key):
            raise ConfigurationError(f"{owner}: cache_key must be callable, got {self.cache_key!r}")
        if not self.cache:
            label = "cache_ttl" if self.cache_ttl is not None else "cache_key"
            value = getattr(self, label)
            raise ConfigurationError(f"{owner}: {label}={value!r} needs cache=True")

    def _check_map_fields(self) -> None:
        owner = f"task {self.name!r}"
        over = self.map_over
        if over is not None and over is not ONLY_UPSTREAM:
            names = (over,) if isinstance(over, str) else over
            if (
                not isinstance(names, Sequence)
                or not names
                or not all(isinstance(n, str) and n for n in names)
            ):
                raise ConfigurationError(
                    f"{owner}: map_over must be an upstream task's name or a non-empty "
                    f"sequence of them, got {over!r}"
                )
            if len(set(names)) != len(names):
                raise ConfigurationError(f"{owner}: map_over names an upstream twice: {over!r}")
            self._options["map_over"] = tuple(names)  # type: ignore[index]  # set: not None
        limit = self.map_limit
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ConfigurationError(f"{owner}: map_limit must be an int >= 1, got {limit!r}")
        for label in ("keep_results", "allow_failed_elements"):
            if not isinstance(getattr(self, label), bool):
                raise ConfigurationError(
                    f"{owner}: {label} must be a bool, got {getattr(self, label)!r}"
                )
        if over is None:
            label = next(
                label
                for label, default in (
                    ("map_limit", None), ("keep_results", True), ("allow_failed_elements", False)
                )
                if getattr(self, label) is not default
            )  # fmt: skip
            raise ConfigurationError(
                f"{owner}: {label}={getattr(self, label)!r} needs map_over (a mapped task)"
            )

    @property
    def is_mapped(self) -> bool:
        """Whether this is a mapped task (see ``map_over``)."""
        return self.map_over is not None

    def map(
        self,
        *upstreams: str,
        limit: int | None = None,
        keep_results: bool = True,
        allow_failed_elements: bool = False,
    ) -> Task[..., list[R]]:
        """The mapped form of this task: one call per element of an upstream's result.

        Examples:
            >>> from flowweaver import DAG, task
            >>> @task
            ... def numbers() -> list[int]:
            ...     return [1, 2, 3]
            >>> @task
            ... def square(n: int) -> int:
            ...     return n * n
            >>> with DAG("squares") as dag:
            ...     _ = numbers >> square.map()
            >>> dag.run("sequential")["square"]
            [1, 4, 9]

        Args:
            *upstreams: The upstream task(s) to map over, zipped when several; none: the
                task's only upstream (refused when it has several).
            limit: ``map_limit``: most elements running at once.
            keep_results: See the ``keep_results`` field.
            allow_failed_elements: See the ``allow_failed_elements`` field.

        Returns:
            A new Task (the same one for the same arguments), with the same name.

        Raises:
            ConfigurationError: A bad argument, or the task is already mapped.
        """
        if self.map_over is not None:
            raise ConfigurationError(f"task {self.name!r} is already mapped over {self.map_over!r}")
        key = (upstreams, limit, keep_results, allow_failed_elements)
        forms: dict[tuple[object, ...], Task[..., Any]] | None = (self._options or {}).get("_forms")
        if forms is None:
            forms = {}
            self._remember("_forms", forms)
        mapped = forms.get(key)
        if mapped is None:
            mapped = forms[key] = replace(
                self,
                map_over=upstreams or ONLY_UPSTREAM,
                map_limit=limit,
                keep_results=keep_results,
                allow_failed_elements=allow_failed_elements,
            )
        return mapped  # type: ignore[return-value]  # its calls return R; the task, list[R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function directly, bypassing retries and timeouts (handy in unit tests)."""
        return self.fn(*args, **kwargs)

    # -- >> and <<: edges go to the open graph of the current context (see _scope) -----------

    def __rshift__(self, other: _Linkable) -> _Linkable:
        """``self >> other``: ``other`` (a task or a list of tasks) depends on ``self``.

        Returns ``other``, so chains continue: ``a >> [b, c] >> d``.
        """
        _scope.record((self,), _linked(other, ">>"))
        return other

    def __rrshift__(self, other: Sequence[object]) -> Self:
        """``[a, b] >> self``: ``self`` depends on each, in list order. Returns ``self``."""
        _scope.record(_linked(other, ">>"), (self,))
        return self

    def __lshift__(self, other: _Linkable) -> _Linkable:
        """``self << other``: ``self`` depends on ``other``. Returns ``other``."""
        _scope.record(_linked(other, "<<"), (self,))
        return other

    def __rlshift__(self, other: Sequence[object]) -> Self:
        """``[a, b] << self``: each depends on ``self``. Returns ``self``."""
        _scope.record((self,), _linked(other, "<<"))
        return self

    # -- the seed's run-state fields, read from the most recent run --------------------------

    def _in_latest(self) -> tuple[WorkflowRun, int] | None:
        latest = self._latest
        if latest is None or isinstance(latest, tuple):
            return latest
        return latest, latest._index[self.name]

    @property
    def status(self) -> TaskStatus:
        """Status in the most recent run that included this task (``pending`` before any)."""
        latest = self._in_latest()
        return TaskStatus.PENDING if latest is None else latest[0].status_at(latest[1])

    @property
    def result(self) -> Any:  # Any, as the seed: a result's type is known only to its reader
        """Result in the most recent run, or None."""
        latest = self._in_latest()
        return None if latest is None else latest[0].result_at(latest[1])

    @property
    def error(self) -> str | None:
        """``"ExceptionType: message"`` of the last failed attempt in the most recent run."""
        latest = self._in_latest()
        if latest is None:
            return None
        exc = latest[0].error_at(latest[1])
        return None if exc is None else f"{type(exc).__name__}: {exc}"

    # -- definition helpers ------------------------------------------------------------------

    @property
    def retry_policy(self) -> RetryPolicy:
        """The task's retry settings as one policy object."""
        return RetryPolicy(
            self.retries,
            self.delay,
            self.backoff,
            self.max_delay,
            self.jitter,
            self.retry_on,
            self.retry_if,
            self.retry_after,
            self.retry_if_result,
        )

    def _call_fn(self) -> Callable[..., Any]:
        """What an attempt calls: ``fn``, or ``fn`` judging its result by ``retry_if_result``."""
        condition = self.retry_if_result
        if condition is None:
            return self.fn
        made = (self._options or {}).get("_judged")  # set: retry_if_result is an option
        if made is None:
            made = judged(self.fn, condition, self.name)
            self._remember("_judged", made)
        return made

    @property
    def params(self) -> Params:
        """The shape of ``fn``'s parameters (read once, then cached)."""
        fn = self.fn
        if type(fn) is FunctionType:
            return params_of(fn)  # cached by code object (see _binding)
        # Anything else is read through inspect: once per task, kept beside its options.
        params: Params | None = (self._options or {}).get("_params")
        if params is None:
            params = params_of(fn)
            self._remember("_params", params)
        return params

    def is_async(self) -> bool:
        """Whether ``fn`` is a coroutine function (a sync ``fn`` may still return an awaitable)."""
        fn = self.fn
        if type(fn) is FunctionType:  # what inspect.iscoroutinefunction reads of one
            return bool(fn.__code__.co_flags & CO_COROUTINE)
        flag: bool | None = (self._options or {}).get("_async")
        if flag is None:
            flag = is_coroutine_callable(fn)
            self._remember("_async", flag)  # fn is immutable: computed once
        return flag

    def execute(self) -> None:
        """Run this task alone, inline, with its retries, timeout and callbacks.

        A failure is both recorded and raised: afterwards ``task.status`` is ``failed`` and
        ``task.error`` reads ``"ExceptionType: message"``, and the call raises, so a caller
        can either inspect the task or ``except RuntimeError``. :meth:`execute_async` does
        the same.

        Raises:
            TaskFailedError: Every attempt failed; ``__cause__`` is the last error.
        """
        from ._resolve import execute_task  # the seed API's one way up (see _resolve)

        execute_task(self)

    async def execute_async(self) -> None:
        """Run this task alone on the running event loop; see :meth:`execute`.

        Raises:
            TaskFailedError: Every attempt failed (the failure is also recorded in
                ``task.status`` and ``task.error``); ``__cause__`` is the last error.
        """
        from ._resolve import execute_task_async  # the seed API's one way up (see _resolve)

        await execute_task_async(self)


@runtime_checkable
class _Subflow(Protocol):
    """What ``>>`` links as its subflow task: a Workflow, DAG or Flow (``_subflow.Nestable``).

    Matched by shape rather than by class, so this module need not import ``_subflow``,
    which builds Tasks (the model layer's imports form no cycle; see tests/test_layers.py).
    """

    def as_task(self) -> Task[..., Any]: ...


def _linked(other: object, operator: str) -> tuple[Task[..., Any], ...]:
    """The tasks on one side of ``>>`` / ``<<``: a task, or a non-empty list or tuple of them.

    A workflow (Workflow, DAG or Flow) among them stands for its subflow task.
    """
    if isinstance(other, Task):
        return (other,)
    if isinstance(other, list | tuple) and other and all(isinstance(t, Task) for t in other):
        return tuple(other)
    if isinstance(other, _Subflow):
        return (other.as_task(),)
    if (
        isinstance(other, list | tuple)
        and other
        and all(isinstance(t, Task | _Subflow) for t in other)
    ):
        return tuple(t if isinstance(t, Task) else t.as_task() for t in other)
    raise ConfigurationError(
        f"{operator} connects tasks or workflows, or non-empty lists of them, got {other!r}"
    )
