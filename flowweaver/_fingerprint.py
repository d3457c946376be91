"""Fingerprints: stable hashes of a task's code, and of stored text.

A committed task result carries the fingerprint of the code and inputs that produced it; a
resumed run reuses the result only if both still match (see ``_durable``). The code part is
computed here, the same in every process and every run on one Python version:

* a plain function: its bytecode, constants (recursively through nested functions, lambdas
  and comprehensions; frozenset constants in sorted order, so ``PYTHONHASHSEED`` does not
  matter), the global and attribute names it uses, its argument layout, and the values of its
  defaults and closure cells — each value by its JSON text when it has one, else by its type
  name (a repr could hold a memory address that changes every run);
* ``functools.partial``: the function plus the bound arguments; a bound method: the function
  plus the type of ``self``; a decorated function (``__wrapped__``): both layers; any other
  callable object: its type and its ``__call__``; builtins: their qualified name.

Not covered, by design: the code of *other* functions the task calls, and global variables it
reads. Line numbers and file names are left out, so moving a function does not change it; its
docstring is a constant, so editing one does. A new Python version changes bytecode: resuming
across an upgrade re-runs (or, with ``on_changed="error"``, refuses) every task.
"""

from __future__ import annotations

import functools
import hashlib
import types
from typing import Any

from ._errors import SerializationError
from ._serialize import JSONSerializer, type_name

__all__ = ["code_fingerprint", "digest"]

_TOKENS = JSONSerializer(allow_imported=False)
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
        _feed_value(feed, fn.__defaults__, depth)
        _feed_value(feed, fn.__kwdefaults__, depth)
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
        _feed_value(feed, fn.args, depth)
        _feed_value(feed, fn.keywords, depth)
    elif isinstance(fn, types.MethodType):
        feed(b"M" + type_name(type(fn.__self__)).encode())
        _feed_callable(feed, fn.__func__, depth + 1)
    elif isinstance(fn, types.BuiltinFunctionType | types.BuiltinMethodType | type):
        module = getattr(fn, "__module__", None) or ""
        feed(f"B{module}.{getattr(fn, '__qualname__', '?')}".encode())
    else:  # a callable object: its class decides what it does
        cls = type(fn)
        feed(b"O" + type_name(cls).encode())
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


def _feed_value(feed: Any, value: object, depth: int) -> None:
    if value is None:
        feed(b"N")
        return
    if type(value) is tuple or type(value) is dict:  # defaults, partial arguments: one by one
        items = value.items() if isinstance(value, dict) else enumerate(value)
        feed(b"(")
        for key, item in items:
            feed(repr(key).encode("utf-8", "surrogatepass") + b":")
            _feed_value(feed, item, depth)
        feed(b")")
        return
    if callable(value) and not isinstance(value, type):
        feed(b"C")
        _feed_callable(feed, value, depth + 1)
        return
    try:
        text = _TOKENS.dumps(value)
    except (SerializationError, ValueError):  # no stable text: its type is all we can say
        text = "<" + type_name(type(value)) + ">"
    feed(b"V" + text.encode("utf-8", "surrogatepass"))
