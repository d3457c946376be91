"""How values become text in a state store, and back: JSON with type tags. Never pickle.

Plain JSON values (``str``, ``int``, ``float``, ``bool``, ``None``, lists, dicts with ``str``
keys) are stored as themselves. Other common types are stored as a tagged object
``{"__fw__": tag, ...}`` and rebuilt with their type:

==========================  ============================================================
tag                         types
==========================  ============================================================
``tuple``, ``set``,          ``tuple``, ``set``, ``frozenset`` (set items sorted when
``frozenset``                they can be, so equal sets store as equal text)
``dict``                     a dict with a non-``str`` key, or with a ``"__fw__"`` key
``bytes``, ``bytearray``     base64
``datetime``, ``date``,      ISO 8601 (a ``zoneinfo.ZoneInfo`` zone is kept by its key)
``time``, ``timedelta``
``decimal``, ``uuid``,       ``Decimal``, ``UUID``, ``pathlib`` paths (rebuilt as
``path``, ``complex``        ``pathlib.Path``), ``complex``
``dataclass``, ``enum``,     instances of dataclasses, ``Enum`` members and named tuples,
``namedtuple``               rebuilt through their class (see below)
==========================  ============================================================

Rebuilding a class instance needs the class. Stored data names it (``module:QualName``), but
importing a module because a file says so would run code chosen by whoever wrote the file. So
:class:`JSONSerializer` only rebuilds classes you registered (``classes=``) and, unless you
say ``allow_imported=False``, classes whose module is **already imported** in this process; it
never imports anything. A dataclass is rebuilt by calling the class with its ``init`` fields,
so its ``__post_init__`` runs (``init=False`` fields are recomputed, not restored).

Anything else (a socket, a lock, a numpy array) has no stored form: :meth:`JSONSerializer.dumps`
raises :class:`~flowweaver.SerializationError` naming the type. Plug in a :class:`Serializer`
of your own for such values.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import pathlib
import sys
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._errors import ConfigurationError, SerializationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["JSONSerializer", "Serializer", "type_name"]

TAG = "__fw__"
_PLAIN = frozenset({str, int, float, bool, type(None)})


@runtime_checkable
class Serializer(Protocol):
    """Turns values into text for a :class:`~flowweaver.StateStore`, and text back into values.

    ``loads(dumps(v))`` must equal ``v``, and equal values should give equal text (a task's
    fingerprint hashes its inputs' text). Raise :class:`~flowweaver.SerializationError` for a
    value you cannot store or a text you cannot read.
    """

    def dumps(self, value: object) -> str:
        """The stored form of ``value``."""
        ...

    def loads(self, text: str) -> object:
        """The value whose stored form is ``text``."""
        ...


def type_name(cls: type) -> str:
    """``module.QualName`` of a type; builtins by their bare name."""
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _class_ref(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class JSONSerializer:
    """The default :class:`Serializer`: JSON with type tags (see the module docstring).

    Example:
        >>> s = JSONSerializer()
        >>> s.dumps((1, {2, 3}))
        '{"__fw__":"tuple","v":[1,{"__fw__":"set","v":[2,3]}]}'
        >>> s.loads(s.dumps((1, {2, 3})))
        (1, {2, 3})

    Args:
        classes: Dataclasses, enums and named tuples that may always be rebuilt.
        allow_imported: Also rebuild such classes from modules already imported in this
            process (never importing one). False: only ``classes``.

    Raises:
        ConfigurationError: An entry of ``classes`` is not a dataclass, enum or named tuple.
    """

    __slots__ = ("_allow_imported", "_classes")

    def __init__(self, classes: Iterable[type] = (), *, allow_imported: bool = True) -> None:
        registered: dict[str, type] = {}
        for cls in classes:
            if not (isinstance(cls, type) and _is_rebuildable(cls)):
                raise ConfigurationError(
                    f"JSONSerializer: classes must be dataclasses, enums or named tuples, "
                    f"got {cls!r}"
                )
            registered[_class_ref(cls)] = cls
        self._classes = registered
        self._allow_imported = bool(allow_imported)

    def __repr__(self) -> str:
        names = sorted(self._classes)
        return f"JSONSerializer(classes={names!r}, allow_imported={self._allow_imported!r})"

    # -- writing -----------------------------------------------------------------------------

    def dumps(self, value: object) -> str:
        """The JSON text of ``value``.

        Raises:
            SerializationError: ``value`` (or something inside it) has no stored form.
        """
        if type(value) in _PLAIN:
            return json.dumps(value)
        try:
            return json.dumps(_encode(value), separators=(",", ":"), check_circular=False)
        except RecursionError:
            raise SerializationError(
                type_name(type(value)), "it nests too deeply or contains itself"
            ) from None

    # -- reading -----------------------------------------------------------------------------

    def loads(self, text: str) -> object:
        """The value stored as ``text``.

        Raises:
            SerializationError: ``text`` is not JSON, or names a class this serializer may not
                rebuild, or a tagged value is malformed.
        """
        try:
            return json.loads(text, object_hook=self._rebuild)
        except json.JSONDecodeError as error:
            raise SerializationError("str", f"not JSON ({error})", restoring=True) from None

    def _rebuild(self, obj: dict[str, Any]) -> object:
        tag = obj.get(TAG)
        if tag is None:
            return obj
        try:
            rebuild = _REBUILDERS.get(tag)
            if rebuild is not None:
                return rebuild(obj["v"])
            if tag in ("dataclass", "enum", "namedtuple"):
                return self._rebuild_instance(tag, obj["cls"], obj["v"])
        except SerializationError:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            raise SerializationError(
                str(tag), f"malformed stored value ({type(error).__name__}: {error})",
                restoring=True,
            ) from None  # fmt: skip
        raise SerializationError(str(tag), "unknown type tag", restoring=True)

    def _rebuild_instance(self, tag: str, ref: str, data: Any) -> object:
        cls = self._find_class(ref)
        if tag == "enum" and issubclass(cls, enum.Enum):
            return cls(data)
        if tag == "namedtuple" and _is_namedtuple(cls):
            return cls(*data)
        if tag == "dataclass" and dataclasses.is_dataclass(cls):
            return cls(**data)
        raise SerializationError(
            type_name(cls), f"the class is not of the stored kind {tag!r}", restoring=True
        )

    def _find_class(self, ref: str) -> type:
        cls = self._classes.get(ref)
        if cls is not None:
            return cls
        if not self._allow_imported:
            raise SerializationError(
                ref.replace(":", "."), "the class is not registered (JSONSerializer(classes=...))",
                restoring=True,
            )  # fmt: skip
        module_name, _, qualname = ref.partition(":")
        module = sys.modules.get(module_name)  # never import: that would run code named by data
        if module is None:
            raise SerializationError(
                ref.replace(":", "."),
                f"module {module_name!r} is not imported; flowweaver never imports a module "
                f"named by stored data (import it first, or register the class)",
                restoring=True,
            )
        found: object = module
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if not (isinstance(found, type) and _is_rebuildable(found)):
            raise SerializationError(
                ref.replace(":", "."),
                "no such dataclass, enum or named tuple in its module",
                restoring=True,
            )
        return found


def _is_namedtuple(cls: type) -> bool:
    return issubclass(cls, tuple) and hasattr(cls, "_fields") and hasattr(cls, "_make")


def _is_rebuildable(cls: type) -> bool:
    return dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum) or _is_namedtuple(cls)


def _sorted_items(items: Iterable[object]) -> list[Any]:
    encoded = [_encode(item) for item in items]
    # Mixed types cannot be sorted: keep iteration order (equal sets may then differ in text).
    with contextlib.suppress(TypeError):
        encoded.sort()
    return encoded


def _encode(value: object) -> Any:
    """A JSON-ready structure for ``value`` (the tagged form where needed)."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is list:
        return [_encode(v) for v in value]  # type: ignore[attr-defined]
    if cls is dict:
        mapping: dict[Any, Any] = value  # type: ignore[assignment]
        if TAG not in mapping and all(type(k) is str for k in mapping):
            return {k: _encode(v) for k, v in mapping.items()}
        return {TAG: "dict", "v": [[_encode(k), _encode(v)] for k, v in mapping.items()]}
    if cls is tuple:
        return {TAG: "tuple", "v": [_encode(v) for v in value]}  # type: ignore[attr-defined]
    if cls is set or cls is frozenset:
        return {TAG: cls.__name__, "v": _sorted_items(value)}  # type: ignore[arg-type]
    encoder = _ENCODERS.get(cls)
    if encoder is not None:
        return encoder(value)
    if isinstance(value, enum.Enum):
        return {TAG: "enum", "cls": _class_ref(cls), "v": _encode(value.value)}
    if dataclasses.is_dataclass(value):
        fields = {
            f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        }
        return {TAG: "dataclass", "cls": _class_ref(cls), "v": fields}
    if _is_namedtuple(cls):
        return {TAG: "namedtuple", "cls": _class_ref(cls), "v": [_encode(v) for v in value]}  # type: ignore[attr-defined]
    if isinstance(value, pathlib.PurePath):
        return {TAG: "path", "v": str(value)}
    raise SerializationError(
        type_name(cls), "it has no JSON form (plug in a Serializer that can store it)"
    )


def _encode_datetime(value: dt.datetime) -> dict[str, Any]:
    key = getattr(value.tzinfo, "key", None)  # a zoneinfo.ZoneInfo keeps its zone, not just
    if isinstance(key, str):  # today's offset
        return {TAG: "datetime", "v": [value.replace(tzinfo=None).isoformat(), key]}
    return {TAG: "datetime", "v": value.isoformat()}


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    bytes: lambda v: {TAG: "bytes", "v": base64.b64encode(v).decode("ascii")},
    bytearray: lambda v: {TAG: "bytearray", "v": base64.b64encode(v).decode("ascii")},
    dt.datetime: _encode_datetime,
    dt.date: lambda v: {TAG: "date", "v": v.isoformat()},
    dt.time: lambda v: {TAG: "time", "v": v.isoformat()},
    dt.timedelta: lambda v: {TAG: "timedelta", "v": [v.days, v.seconds, v.microseconds]},
    Decimal: lambda v: {TAG: "decimal", "v": str(v)},
    uuid.UUID: lambda v: {TAG: "uuid", "v": str(v)},
    complex: lambda v: {TAG: "complex", "v": [v.real, v.imag]},
}


def _rebuild_datetime(data: str | list[str]) -> dt.datetime:
    if isinstance(data, str):
        return dt.datetime.fromisoformat(data)
    iso, zone = data
    from zoneinfo import ZoneInfo  # standard library; a zone key is data, not code

    return dt.datetime.fromisoformat(iso).replace(tzinfo=ZoneInfo(zone))


def _dict_from_pairs(pairs: list[list[Any]]) -> dict[Any, Any]:
    return dict(pairs)


_REBUILDERS: dict[str, Callable[[Any], object]] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "dict": _dict_from_pairs,
    "bytes": lambda v: base64.b64decode(v, validate=True),
    "bytearray": lambda v: bytearray(base64.b64decode(v, validate=True)),
    "datetime": _rebuild_datetime,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "path": pathlib.Path,
    "complex": lambda v: complex(v[0], v[1]),
}
