"""Argument checks shared by every public entry point: one rule per kind of value, written once.

Each check returns the value (normalised where that helps its caller) or raises
:class:`~flowweaver.ConfigurationError` — a ``ValueError`` and a ``TypeError`` — whose message
names the entry point, the argument and the ``repr`` of the bad value. Booleans are never
numbers here: ``timeout=True`` and ``workers=True`` are always mistakes.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any, TypeGuard

from ._errors import ConfigurationError

__all__ = [
    "check_callables",
    "check_count",
    "check_flag",
    "check_items",
    "check_mapping",
    "check_number",
    "check_sequence_of",
    "is_count",
    "is_number",
]


def is_number(value: object) -> TypeGuard[int | float]:
    """A finite real number (``int`` or ``float``), not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value: object, minimum: int = 0) -> TypeGuard[int]:
    """An ``int`` (not a ``bool``) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_number(
    owner: str, name: str, value: object, *, minimum: float = 0.0, strict: bool = False
) -> float:
    """Validate a real number argument and return it as a float.

    Raises:
        ConfigurationError: ``value`` is not a finite real number at least (or, with ``strict``,
            above) ``minimum``. Booleans are refused: ``timeout=True`` is always a mistake.
    """
    if is_number(value):
        number = float(value)
        if number > minimum if strict else number >= minimum:
            return number
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    raise ConfigurationError(f"{owner}: {name} must be a finite number {bound}, got {value!r}")


def check_count(owner: str, name: str, value: object, *, minimum: int = 0) -> int:
    """Validate an integer argument (booleans refused) that must be at least ``minimum``."""
    if is_count(value, minimum):
        return value
    raise ConfigurationError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")


def check_flag(owner: str, name: str, value: object) -> bool:
    """Validate a True/False argument (``progress="yes"`` is refused, not read as truthy)."""
    if isinstance(value, bool):
        return value
    raise ConfigurationError(f"{owner}: {name} must be a bool, got {value!r}")


def check_items(owner: str, items: object) -> None:
    """Validate what a pipeline is fed: an iterable or async iterable of items.

    A ``str`` or ``bytes`` is refused although it iterates: its characters becoming items is
    never what was meant (wrap one item in a list).
    """
    if isinstance(items, str | bytes | bytearray) or not isinstance(
        items, Iterable | AsyncIterable
    ):
        raise ConfigurationError(
            f"{owner}: items must be an iterable or async iterable of items, got {items!r}"
        )


def check_sequence_of(owner: str, name: str, value: object, kind: type, what: str) -> list[Any]:
    """Validate a list or tuple whose elements are all ``kind`` (``what`` names it; ``kind``
    may be a runtime-checkable Protocol)."""
    if isinstance(value, list | tuple) and all(isinstance(v, kind) for v in value):
        return list(value)
    raise ConfigurationError(f"{owner}: {name} must be a list or tuple of {what}, got {value!r}")


def check_callables(owner: str, name: str, value: object) -> list[Callable[..., Any]]:
    """Validate a callable, or a non-empty list or tuple of callables; return them as a list."""
    if callable(value):
        return [value]
    if isinstance(value, list | tuple) and value and all(callable(v) for v in value):
        return list(value)
    raise ConfigurationError(
        f"{owner}: {name} must be a callable or a non-empty list of callables, got {value!r}"
    )


def check_mapping(owner: str, name: str, value: object) -> Mapping[Any, Any]:
    """Validate a mapping argument (None counts as an empty one)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise ConfigurationError(f"{owner}: {name} must be a mapping (a dict), got {value!r}")
