"""How values become text in a state store, and back: JSON with type tags. Never pickle.

Plain JSON values (``str``, ``int``, ``float``, ``bool``, ``None``, lists, dicts with ``str``
keys) are stored as themselves. Other common types are stored as a tagged object
``{"__fw__": tag, ...}`` and rebuilt with their type:

==========================  ============================================================
tag                         types
==========================  ============================================================
``tuple``, ``set``,          ``tuple``, ``set``, ``frozenset`` (set items in sorted
``frozenset``                order, so equal sets store as equal text in every process)
``dict``                     a dict with a non-``str`` key, or with a ``"__fw__"`` key
``bytes``, ``bytearray``     base64
``datetime``, ``date``,      ISO 8601 (a ``zoneinfo.ZoneInfo`` zone is kept by its key,
``time``, ``timedelta``      and ``fold``, which tells a repeated wall-clock time apart)
``int``                      an int too long for JSON's decimal digits (over 4,000), in hex
``decimal``, ``uuid``,       ``Decimal``, ``UUID``, ``pathlib`` paths (rebuilt as
``path``, ``complex``        ``pathlib.Path``), ``complex``
``dataclass``, ``enum``,     instances of dataclasses, ``Enum`` members and named tuples,
``namedtuple``               rebuilt through their class (see below)
==========================  ============================================================

Rebuilding a class instance needs the class. Stored data names it (``module:QualName``;
flowweaver's own classes by their public name, ``flowweaver:TaskStatus``, never the private
module that defines them, so moving code never orphans a store), but
importing a module because a file says so would run code chosen by whoever wrote the file. So
:class:`JSONSerializer` only rebuilds classes you registered (``classes=``) and, unless you
say ``allow_imported=False``, classes whose module is **already imported** in this process; it
never imports anything. A dataclass is rebuilt by calling the class with its ``init`` fields,
so its ``__post_init__`` runs (``init=False`` fields are recomputed, not restored); one whose
``__init__`` needs an argument that is not a field (an ``InitVar`` without a default) has no
stored form.

Releases up to 0.3.0 wrote flowweaver's classes under their private module
(``flowweaver._status:TaskStatus``): those tags are read through a frozen table
(:data:`LEGACY_TAGS`). Fingerprints (``_fingerprint``, pipeline item keys and inputs) hash
:func:`stable_dumps`, which still spells flowweaver's classes the 0.3.0 way, so a resumed run's
fingerprints match what that release committed.

Anything else (a socket, a lock, a numpy array) has no stored form: :meth:`JSONSerializer.dumps`
raises :class:`~flowweaver.SerializationError` naming the type. Plug in a :class:`Serializer`
of your own for such values.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import inspect
import json
import pathlib
import sys
import uuid
import weakref
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError, SerializationError
from ._public import publish
from ._store_types import Serializer

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "LEGACY_TAGS",
    "JSONSerializer",
    "Serializer",
    "is_rebuildable",
    "stable_dumps",
    "stable_type_name",
    "type_name",
]

TAG = "__fw__"
_PLAIN = frozenset({str, int, float, bool, type(None)})
#: Bits above which an int is stored in hex: Python refuses int <-> decimal str conversions
#: beyond 4,300 digits (about 14,000 bits), and JSON numbers are decimal.
_BIG_INT_BITS = 13_000


def type_name(cls: type) -> str:
    """``module.QualName`` of a type; builtins by their bare name."""
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _class_ref(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


#: Where each public class lived in 0.3.0, the last release whose stores named private modules.
#: Frozen history: never edit it when code moves (that is what the public tags are for).
_MODULES_0_3_0 = {
    "_async": "AsyncExecutor",
    "_dag": "DAG",
    "_dashboard": "DashboardProtocol",
    "_dashboards": "CompactDashboard DetailedDashboard FullDashboard",
    "_dask": "DaskExecutor",
    "_errors": "BindingError ConfigurationError CycleError DefinitionError DuplicateTaskError "
    "EventLoopError ExecutionError ExecutorShutdownError FlowWeaverError ItemCancelledError "
    "ItemMismatchError MissingDependencyError PipelineError ResultUnavailableError "
    "SerializationError StageValidationError StateAccessError StateCorruptError StateError "
    "StateLockedError StateMismatchError StateVersionError TaskFailedError "
    "TaskNameCollisionError TaskTimeoutError TransferError UnknownDependencyError "
    "UnknownTaskError WorkerDiedError WorkflowFailedError",
    "_events": "Monitor",
    "_executors": "BaseExecutor Executor PoolExecutor SequentialExecutor ThreadedExecutor",
    "_flow": "Flow",
    "_json_store": "JSONFileStore",
    "_logging": "LogLevel",
    "_options": "RunOptions",
    "_pipeline": "Pipeline",
    "_pipeline_builder": "PipelineBuilder",
    "_pipeline_types": "DashboardSnapshot ErrorSummary FailedItem ItemStatus PipelineResult "
    "PipelineStats StageStats StatusEvent TaskEvent TaskEventType WorkerMetrics WorkerState "
    "WorkerStatus",
    "_process": "ProcessExecutor",
    "_retry": "Clock RetryPolicy SystemClock",
    "_run": "WorkflowRun",
    "_serialize": "JSONSerializer Serializer",
    "_sqlite_store": "SQLiteStore",
    "_stage": "Stage",
    "_state_manager": "StateManager",
    "_status": "ChangePolicy FailurePolicy TaskStatus",
    "_store": "MemoryStore StateEntry StateStore",
    "_task": "Task",
    "_tracker": "StatusTracker",
    "_workflow": "Workflow",
}
#: Old tag -> public tag: ``"flowweaver._status:TaskStatus" -> "flowweaver:TaskStatus"``.
LEGACY_TAGS: dict[str, str] = {
    f"flowweaver.{module}:{name}": f"flowweaver:{name}"
    for module, names in _MODULES_0_3_0.items()
    for name in names.split()
}
_OLD_REFS = {public: old for old, public in LEGACY_TAGS.items()}
_OLD_NAMES = {public.replace(":", "."): old.replace(":", ".") for public, old in _OLD_REFS.items()}


def _stable_ref(cls: type) -> str:
    ref = _class_ref(cls)
    return _OLD_REFS.get(ref, ref)


def stable_type_name(cls: type) -> str:
    """:func:`type_name` as fingerprints need it: flowweaver's classes as 0.3.0 spelled them,
    so moving or publishing a class never changes the fingerprint of code that mentions it."""
    name = type_name(cls)
    return _OLD_NAMES.get(name, name)


class JSONSerializer:
    """The default :class:`Serializer`: JSON with type tags (see the module docstring).

    Examples:
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
        given: object = classes
        if isinstance(given, str | bytes) or not isinstance(given, Iterable):
            raise ConfigurationError(
                f"JSONSerializer: classes must be an iterable of classes, got {classes!r}"
            )
        for cls in classes:
            if not (isinstance(cls, type) and is_rebuildable(cls)):
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
        return _dumps(value, _encode)

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
        except (ValueError, RecursionError) as error:  # e.g. a number of 5,000 digits
            raise SerializationError(
                "str", f"cannot be read ({type(error).__name__}: {error})", restoring=True
            ) from None

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
            if _init_only_arguments(cls):
                raise SerializationError(
                    type_name(cls), "its __init__ needs arguments that are not stored fields",
                    restoring=True,
                )  # fmt: skip
            return cls(**data)
        raise SerializationError(
            type_name(cls), f"the class is not of the stored kind {tag!r}", restoring=True
        )

    def _find_class(self, ref: str) -> type:
        cls = self._classes.get(LEGACY_TAGS.get(ref, ref))
        if cls is not None:
            return cls
        if not self._allow_imported:
            raise SerializationError(
                ref.replace(":", "."), "the class is not registered (JSONSerializer(classes=...))",
                restoring=True,
            )  # fmt: skip
        module_name, _, qualname = LEGACY_TAGS.get(ref, ref).partition(":")
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
        if not (isinstance(found, type) and is_rebuildable(found)):
            raise SerializationError(
                ref.replace(":", "."),
                "no such dataclass, enum or named tuple in its module",
                restoring=True,
            )
        return found


def _is_namedtuple(cls: type) -> bool:
    return issubclass(cls, tuple) and hasattr(cls, "_fields") and hasattr(cls, "_make")


def is_rebuildable(cls: type) -> bool:
    """Whether the serializer can store instances of ``cls`` (through the class)."""
    return dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum) or _is_namedtuple(cls)


_INIT_ONLY: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _init_only_arguments(cls: type) -> tuple[str, ...]:
    """Required ``__init__`` arguments of a dataclass that are not init fields (``InitVar``)."""
    found = _INIT_ONLY.get(cls)
    if found is None:
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        found = _INIT_ONLY[cls] = tuple(
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.name not in fields
            and p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
    return found


def _make_encoder(ref: Callable[[type], str]) -> Callable[[object], Any]:
    """The function that turns a value into a JSON-ready structure (the tagged form where
    needed), naming classes with ``ref``."""

    def _sorted_items(items: Iterable[object]) -> list[Any]:
        encoded = [_encode(item) for item in items]
        try:
            encoded.sort()
        except TypeError:  # mixed types, tagged objects: order by their JSON text instead
            encoded.sort(key=lambda e: json.dumps(e, sort_keys=True, separators=(",", ":")))
        return encoded

    def _encode(value: object) -> Any:
        cls = type(value)
        if cls in _PLAIN:
            if cls is int and value.bit_length() > _BIG_INT_BITS:  # type: ignore[attr-defined]
                return {TAG: "int", "v": hex(value)}  # type: ignore[arg-type]
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
            return {TAG: "enum", "cls": ref(cls), "v": _encode(value.value)}
        if dataclasses.is_dataclass(value):
            missing = _init_only_arguments(cls)
            if missing:
                raise SerializationError(
                    type_name(cls),
                    f"its __init__ needs {', '.join(map(repr, missing))}, which is not a stored "
                    f"field (an InitVar): it could not be rebuilt",
                )
            fields = {
                f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
            }
            return {TAG: "dataclass", "cls": ref(cls), "v": fields}
        if _is_namedtuple(cls):
            return {TAG: "namedtuple", "cls": ref(cls), "v": [_encode(v) for v in value]}  # type: ignore[attr-defined]
        if isinstance(value, pathlib.PurePath):
            return {TAG: "path", "v": str(value)}
        raise SerializationError(
            type_name(cls), "it has no JSON form (plug in a Serializer that can store it)"
        )

    return _encode


_encode = _make_encoder(_class_ref)
_encode_stable = _make_encoder(_stable_ref)


def _dumps(value: object, encode: Callable[[object], Any]) -> str:
    if type(value) in _PLAIN and type(value) is not int:
        return json.dumps(value)
    try:
        return json.dumps(encode(value), separators=(",", ":"), check_circular=False)
    except RecursionError:
        raise SerializationError(
            type_name(type(value)), "it nests too deeply or contains itself"
        ) from None


def stable_dumps(value: object) -> str:
    """:meth:`JSONSerializer.dumps` with flowweaver's classes named as 0.3.0 named them: the
    text that fingerprints hash, unchanged since that release (see the module docstring).

    Raises:
        SerializationError: ``value`` (or something inside it) has no stored form.
    """
    return _dumps(value, _encode_stable)


def _encoder(tag: str) -> Callable[[dt.datetime | dt.time], dict[str, Any]]:
    """ISO text; a ``zoneinfo.ZoneInfo`` by its key (its offset depends on the date, and a
    ``time`` has none), and ``fold`` when set (the second 01:30 of a night clocks go back)."""

    def encode(value: dt.datetime | dt.time) -> dict[str, Any]:
        key = getattr(value.tzinfo, "key", None)
        if not isinstance(key, str):
            if not value.fold:
                return {TAG: tag, "v": value.isoformat()}
            return {TAG: tag, "v": [value.isoformat(), None, 1]}
        return {TAG: tag, "v": [value.replace(tzinfo=None).isoformat(), key, value.fold]}

    return encode


def _rebuilder(parse: Callable[[str], Any]) -> Callable[[str | list[Any]], Any]:
    def rebuild(data: str | list[Any]) -> Any:
        if isinstance(data, str):
            return parse(data)
        iso, zone, *fold = data  # [iso, key] before fold was stored
        value = parse(iso)
        if zone is not None:
            from zoneinfo import ZoneInfo  # standard library; a zone key is data, not code

            value = value.replace(tzinfo=ZoneInfo(zone))
        return value.replace(fold=fold[0]) if fold else value

    return rebuild


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    bytes: lambda v: {TAG: "bytes", "v": base64.b64encode(v).decode("ascii")},
    bytearray: lambda v: {TAG: "bytearray", "v": base64.b64encode(v).decode("ascii")},
    dt.datetime: _encoder("datetime"),
    dt.date: lambda v: {TAG: "date", "v": v.isoformat()},
    dt.time: _encoder("time"),
    dt.timedelta: lambda v: {TAG: "timedelta", "v": [v.days, v.seconds, v.microseconds]},
    Decimal: lambda v: {TAG: "decimal", "v": str(v)},
    uuid.UUID: lambda v: {TAG: "uuid", "v": str(v)},
    complex: lambda v: {TAG: "complex", "v": [v.real, v.imag]},
}


def _dict_from_pairs(pairs: list[list[Any]]) -> dict[Any, Any]:
    return dict(pairs)


_REBUILDERS: dict[str, Callable[[Any], object]] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "dict": _dict_from_pairs,
    "bytes": lambda v: base64.b64decode(v, validate=True),
    "bytearray": lambda v: bytearray(base64.b64decode(v, validate=True)),
    "int": lambda v: int(v, 16),
    "datetime": _rebuilder(dt.datetime.fromisoformat),
    "date": dt.date.fromisoformat,
    "time": _rebuilder(dt.time.fromisoformat),
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "path": pathlib.Path,
    "complex": lambda v: complex(v[0], v[1]),
}


publish(__name__)  # last: every exported class above exists
