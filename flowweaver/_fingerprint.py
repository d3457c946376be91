"""Fingerprints: stable hashes of a task's code, and of stored text.

A committed task result carries the fingerprint of the code and inputs that produced it; a
resumed run reuses the result only if both still match (see ``_durable``). The code part is
computed here, the same in every process and every run on one Python version:

* a plain function: its bytecode, constants (recursively through nested functions, lambdas
  and comprehensions; frozenset constants in sorted order, so ``PYTHONHASHSEED`` does not
  matter), the global and attribute names it uses, its argument layout, and the values of its
  defaults and closure cells — each value by its JSON text when it has one, else by its type
  name (a repr could hold a memory address that changes every run); flowweaver's own classes
  count by the names 0.3.0 gave them (``_serialize.stable_dumps``), so our refactors never
  change a fingerprint;
* ``functools.partial``: the function plus the bound arguments; a bound method: the function
  plus the type of ``self``; a decorated function (``__wrapped__``): both layers; any other
  callable object: its type and its ``__call__``; builtins: their qualified name.

Captured values (defaults, closure cells, partial arguments) count by value only when they are
immutable constants — numbers, strings, bytes, ``None``, enums, dates and times, decimals,
UUIDs, paths, and tuples/frozensets/frozen dataclasses of those; a class counts by its
qualified name (``conv=int`` and ``conv=float`` differ). Anything mutable or opaque (a
list a task appends to, a logger, a connection pool, a config dict) counts by its type alone:
its contents change while the code does not, and hashing them would make every task look
"changed" on resume. To make a change of configuration re-run a task, pass the configuration
as an input (an upstream task's result) or start a new run id.

Not covered, by design: the code of *other* functions the task calls, and global variables it
reads. Line numbers and file names are left out, so moving a function does not change it; its
docstring is a constant, so editing one does. A new Python version changes bytecode: resuming
across an upgrade re-runs (or, with ``on_changed="error"``, refuses) every task.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import hashlib
import pathlib
import types
import uuid
from typing import Any

from ._errors import SerializationError
from ._serialize import stable_dumps, stable_type_name

__all__ = ["code_fingerprint", "digest"]

_MAX_DEPTH = 8  # functions referring to functions referring to …: stop somewhere


def digest(text: str) -> str:
    """A short stable hash of stored text (32 hex digits)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def code_fingerprint(fn: object) -> str:
    """The fingerprint of a callable's code (see the module docstring); 32 hex digits."""
    hasher = hashlib.blake2b(digest_size=16)
    _feed_callable(hasher.update, fn, 0)
    return hasher.hexdigest()


def _feed_callable(feed: Any, fn: object, depth: int) -> None:
    if depth > _MAX_DEPTH:
        feed(b"<deep>")
        return
    if isinstance(fn, types.FunctionType):
        feed(b"F")
        _feed_code(feed, fn.__code__)
        _feed_values(feed, fn.__defaults__, depth)
        _feed_values(feed, fn.__kwdefaults__, depth)
        for cell in fn.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell: a name not bound yet
                feed(b"<empty>")
            else:
                _feed_value(feed, contents, depth)
        wrapped = fn.__dict__.get("__wrapped__")
        if wrapped is not None:
            _feed_callable(feed, wrapped, depth + 1)
    elif isinstance(fn, functools.partial):
        feed(b"P")
        _feed_callable(feed, fn.func, depth + 1)
        _feed_values(feed, fn.args, depth)
        _feed_values(feed, fn.keywords, depth)
    elif isinstance(fn, types.MethodType):
        feed(b"M" + stable_type_name(type(fn.__self__)).encode())
        _feed_callable(feed, fn.__func__, depth + 1)
    elif isinstance(fn, type):  # spelled as 0.3.0 did: "builtins.int", "flowweaver._task.Task"
        prefix = "builtins." if fn.__module__ == "builtins" else ""
        feed(f"B{prefix}{stable_type_name(fn)}".encode())
    elif isinstance(fn, types.BuiltinFunctionType | types.BuiltinMethodType):
        module = getattr(fn, "__module__", None) or ""
        feed(f"B{module}.{getattr(fn, '__qualname__', '?')}".encode())
    else:  # a callable object: its class decides what it does
        cls = type(fn)
        feed(b"O" + stable_type_name(cls).encode())
        call = getattr(cls, "__call__", None)  # noqa: B004 - the class attribute, not callable()
        if isinstance(call, types.FunctionType):
            _feed_callable(feed, call, depth + 1)


def _feed_code(feed: Any, code: types.CodeType) -> None:
    feed(code.co_code)
    feed(repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount)).encode())
    feed(repr((code.co_flags, code.co_names, code.co_varnames, code.co_freevars)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            feed(b"{")
            _feed_code(feed, const)
            feed(b"}")
        else:
            feed(_canonical(const).encode("utf-8", "surrogatepass"))
        feed(b",")


def _canonical(const: object) -> str:
    """repr of a code constant, with set order fixed (constants are immutable builtins)."""
    if isinstance(const, frozenset):
        return "frozenset(" + ",".join(sorted(_canonical(c) for c in const)) + ")"
    if isinstance(const, tuple):
        return "(" + ",".join(_canonical(c) for c in const) + ")"
    return repr(const)


def _feed_values(feed: Any, values: tuple[Any, ...] | dict[str, Any] | None, depth: int) -> None:
    """Defaults, keyword defaults, partial arguments: each value in turn."""
    if values is None:
        feed(b"N")
        return
    items = values.items() if isinstance(values, dict) else enumerate(values)
    feed(b"(")
    for key, item in items:
        feed(repr(key).encode("utf-8", "surrogatepass") + b":")
        _feed_value(feed, item, depth)
    feed(b")")


def _feed_value(feed: Any, value: object, depth: int) -> None:
    if isinstance(value, type):  # a class by its name: `conv=int` and `conv=float` differ
        feed(b"K" + stable_type_name(value).encode())
        return
    if type(value) is tuple and depth <= _MAX_DEPTH:  # item by item: it may hold classes
        feed(b"(")
        for item in value:
            _feed_value(feed, item, depth + 1)
            feed(b",")
        feed(b")")
        return
    if callable(value):
        feed(b"C")
        _feed_callable(feed, value, depth + 1)
        return
    if _is_constant(value):
        try:
            feed(b"V" + stable_dumps(value).encode("utf-8", "surrogatepass"))
        except (SerializationError, ValueError):
            pass
        else:
            return
    feed(
        b"T" + stable_type_name(type(value)).encode()
    )  # mutable or opaque: its type is what counts


_CONSTANT_TYPES = (
    type(None), bool, int, float, complex, str, bytes, decimal.Decimal, enum.Enum,
    datetime.date, datetime.time, datetime.timedelta, uuid.UUID, pathlib.PurePath,
)  # fmt: skip


def _is_constant(value: object, depth: int = 0) -> bool:
    """Immutable all the way down (see the module docstring)."""
    if isinstance(value, _CONSTANT_TYPES):
        return True
    if depth > _MAX_DEPTH:
        return False
    if type(value) in (tuple, frozenset):
        return all(_is_constant(item, depth + 1) for item in value)  # type: ignore[attr-defined]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.__dataclass_params__.frozen and all(  # type: ignore[attr-defined]
            _is_constant(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        )
    return False
