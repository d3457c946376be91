"""``@task``: a function becomes a :class:`~flowweaver.Task`, the same model a Workflow runs.

The decorator adds nothing of its own: every keyword is a ``Task`` field, forwarded as is, so a
field added to ``Task`` later is accepted here without changes. The result *is* a ``Task``:
calling it calls the function (so it stays unit-testable) and, being ``Task[P, R]``, it keeps
the function's parameter and return types for mypy.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast, overload

from . import _scope
from ._errors import ConfigurationError
from ._task import Task

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["TaskDecorator", "task"]

P = ParamSpec("P")
R = TypeVar("R")


class TaskDecorator(Protocol):
    """What ``task(...)`` returns: turns a function into a ``Task`` with those options."""

    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


@cache
def _option_names() -> frozenset[str]:
    # Every field a Task takes, read from the dataclass itself: no list to keep in step.
    return frozenset(f.name for f in dataclasses.fields(Task) if f.init) - {"fn", "name"}


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(*, name: str | None = None, **options: object) -> TaskDecorator: ...


def task(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None, **options: object
) -> Task[..., Any] | TaskDecorator:
    """Make a function a task: ``@task``, ``@task()`` or ``@task(retries=3, timeout=5.0)``.

    Examples:
        >>> from flowweaver import task
        >>> @task(retries=2)
        ... def extract() -> list[int]:
        ...     return [1, 2, 3]
        >>> extract()  # still a plain call
        [1, 2, 3]
        >>> extract.name, extract.retries
        ('extract', 2)

    Args:
        fn: The function (when used as ``@task`` without parentheses).
        name: The task's name; default: the function's ``__name__``.
        **options: Any other :class:`~flowweaver.Task` field: ``retries``, ``delay``,
            ``backoff``, ``max_delay``, ``jitter``, ``retry_on``, ``timeout``, ``when``,
            ``skip_if_upstream_skipped``, ``on_status_change``, ``on_retry`` …

    Returns:
        The :class:`~flowweaver.Task`, or a decorator that makes one.

    Raises:
        ConfigurationError: An option is not a Task field or has a bad value, the function is
            not callable, or it has no ``__name__`` and no ``name`` was given.
    """
    unknown = set(options) - _option_names()
    if unknown:
        raise ConfigurationError(
            f"task() got unknown option(s) {sorted(unknown)!r}; "
            f"expected some of {sorted(_option_names() | {'name'})!r}"
        )
    if fn is not None:
        return _make(fn, name, options)

    def decorate(fn: Callable[P, R], /) -> Task[P, R]:
        return _make(fn, name, options)

    return decorate


def _make(fn: Callable[P, R], name: str | None, options: dict[str, object]) -> Task[P, R]:
    if isinstance(fn, Task):
        raise ConfigurationError(f"task() expects a function, got the task {fn.name!r}")
    if not callable(fn):
        raise ConfigurationError(f"task() expects a callable, got {fn!r}")
    if name is None:
        name = getattr(fn, "__name__", None)
        if not isinstance(name, str):
            raise ConfigurationError(f"task() cannot name {fn!r}; pass name=...")
    made = Task(name=name, fn=fn, **cast("dict[str, Any]", options))
    _scope.declare(made)  # a lone @task can be a DAG of its own (see flowweaver._scope)
    return made
