"""The default serializer: JSON that keeps types, rebuilds only classes it may, never imports."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import math
import pathlib
import subprocess
import sys
import uuid
from dataclasses import InitVar, dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowweaver import ConfigurationError, JSONSerializer, SerializationError, Serializer

from .conftest import outputs_under_hash_seeds


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


@dataclass(frozen=True)
class Point:
    x: int
    y: tuple[int, ...]
    label: str = "p"
    norm: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", abs(self.x))


class Pair(NamedTuple):
    left: int
    right: str


def same(a: object, b: object) -> bool:
    """Equal, and of the same type all the way down."""
    if type(a) is not type(b):
        return False
    # `b` has the type of `a`, so each isinstance test of `b` below only tells mypy so.
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


VALUES = [
    None, True, 0, -(10**30), 1.5, float("inf"), float("nan"), "", "text ✓",
    [1, "a", None], (1, (2, 3)), (), {1, 2, 3}, frozenset({"a", "b"}), set(),
    {"a": 1, "b": [1, 2]}, {1: "one", (2, 3): "pair"}, {"__fw__": "not a tag"},
    b"\x00\xffraw", bytearray(b"buf"), 3 + 4j,
    dt.datetime(2024, 6, 1, 12, 30, tzinfo=dt.UTC), dt.datetime(2024, 6, 1, 12, 30),
    dt.datetime(2024, 6, 1, 12, tzinfo=ZoneInfo("Europe/Paris")),
    dt.date(2024, 6, 1), dt.time(23, 59, 1, 5), dt.timedelta(days=-1, seconds=5),
    dt.time(12, tzinfo=ZoneInfo("Europe/Paris")), dt.time(1, 30, fold=1), 10**5000, -(2**20_000),
    Decimal("1.10"), uuid.UUID(int=7), pathlib.Path("/data/in.csv"),
    Color.RED, Color.BLUE, Point(-3, (1, 2)), Pair(1, "x"),
    {"nested": [{"set": {1}, "when": dt.date(2024, 1, 1), "p": Point(1, ())}]},
]  # fmt: skip


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_come_back_with_their_types(value: object) -> None:
    s = JSONSerializer()
    assert same(s.loads(s.dumps(value)), value)


def test_a_dataclass_is_rebuilt_through_init() -> None:
    s = JSONSerializer()
    back = s.loads(s.dumps(Point(-3, (1,))))
    assert isinstance(back, Point) and back.norm == 3  # __post_init__ ran


def test_a_zoneinfo_zone_is_kept_by_name() -> None:
    s = JSONSerializer()
    value = dt.datetime(2024, 1, 1, tzinfo=ZoneInfo("America/New_York"))
    back = s.loads(s.dumps(value))
    assert isinstance(back, dt.datetime) and back.tzinfo == ZoneInfo("America/New_York")


def test_the_second_of_a_repeated_wall_clock_time_is_kept() -> None:
    # 01:30 happens twice in New York on 2024-11-03: fold=1 is the second, an hour later.
    s = JSONSerializer()
    second = dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))
    back = s.loads(s.dumps(second))
    assert isinstance(back, dt.datetime)
    assert (back.fold, back.timestamp()) == (1, second.timestamp())
    assert back.timestamp() - second.replace(fold=0).timestamp() == 3600


def test_old_stored_zoned_datetimes_still_load() -> None:
    text = '{"__fw__":"datetime","v":["2024-01-01T00:00:00","Europe/Paris"]}'
    back = JSONSerializer().loads(text)
    assert back == dt.datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))


def test_a_dataclass_with_a_required_init_var_has_no_stored_form() -> None:
    @dataclass
    class Scaled:
        value: int
        factor: InitVar[int]

        def __post_init__(self, factor: int) -> None:
            self.value *= factor

    with pytest.raises(SerializationError) as info:
        JSONSerializer().dumps(Scaled(2, 3))
    assert "needs 'factor', which is not a stored field (an InitVar)" in str(info.value)


def test_sets_of_unorderable_items_store_the_same_under_any_hash_seed() -> None:
    script = (
        "from flowweaver import JSONSerializer\n"
        "print(JSONSerializer().dumps({('a', 1), ('b', 2), ('c', 3), ('d', 4), (5, 'e')}))\n"
    )
    assert len(outputs_under_hash_seeds(script)) == 1


def test_a_number_too_long_for_python_to_read_is_a_typed_error() -> None:
    with pytest.raises(SerializationError) as info:
        JSONSerializer().loads("1" * 5000)
    assert str(info.value).startswith("cannot restore a value of type 'str': cannot be read")


def test_plain_json_is_stored_as_itself() -> None:
    s = JSONSerializer()
    assert s.dumps({"a": [1, 2.5, None, True]}) == '{"a":[1,2.5,null,true]}'
    assert s.dumps("x") == '"x"'


def test_equal_sets_store_as_equal_text() -> None:
    s = JSONSerializer()
    assert s.dumps({3, 1, 2}) == s.dumps({2, 3, 1}) == '{"__fw__":"set","v":[1,2,3]}'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary() | st.dates(),
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text() | st.integers(), inner, max_size=4)
    | st.frozensets(st.integers() | st.text(), max_size=4)
    | st.sets(st.integers(), max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(json_values)
def test_round_trip_keeps_every_value_and_type(value: Any) -> None:
    s = JSONSerializer()
    assert same(s.loads(s.dumps(value)), value)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        ([1, {"deep": [lambda: 0]}], "function"),
        (
            collections.OrderedDict(a=1),
            "collections.OrderedDict",
        ),  # a subclass would come back as dict
        (collections.defaultdict(list), "collections.defaultdict"),
    ],
)
def test_a_value_without_a_stored_form_is_named(value: object, type_name: str) -> None:
    with pytest.raises(SerializationError) as info:
        JSONSerializer().dumps(value)
    assert str(info.value) == (
        f"cannot store a value of type {type_name!r}: it has no JSON form "
        "(plug in a Serializer that can store it)"
    )
    assert isinstance(info.value, TypeError)
    assert (info.value.type_name, info.value.task_name, info.value.restoring) == (
        type_name, None, False,
    )  # fmt: skip


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(SerializationError) as info:
        JSONSerializer().dumps(loop)
    assert (
        str(info.value)
        == "cannot store a value of type 'list': it nests too deeply or contains itself"
    )


def test_stored_data_never_imports_a_module() -> None:
    # In a fresh interpreter: a stored value naming an unimported module must not import it.
    code = (
        "import sys\n"
        "from flowweaver import JSONSerializer, SerializationError\n"
        'text = \'{"__fw__":"dataclass","cls":"http.server:Nope","v":{}}\'\n'
        "try:\n"
        "    JSONSerializer().loads(text)\n"
        "except SerializationError as e:\n"
        "    print(e)\n"
        "print('http.server' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "cannot restore a value of type 'http.server.Nope': module 'http.server' is not "
        "imported; flowweaver never imports a module named by stored data (import it first, "
        "or register the class)",
        "False",
    ]


def test_only_registered_classes_with_allow_imported_false() -> None:
    text = JSONSerializer().dumps(Point(1, ()))
    strict = JSONSerializer(allow_imported=False)
    with pytest.raises(SerializationError) as info:
        strict.loads(text)
    assert str(info.value) == (
        "cannot restore a value of type 'tests.test_serialize.Point': the class is not "
        "registered (JSONSerializer(classes=...))"
    )
    assert JSONSerializer([Point], allow_imported=False).loads(text) == Point(1, ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"__fw__":"dataclass","cls":"os:getcwd","v":{}}',
         "cannot restore a value of type 'os.getcwd': no such dataclass, enum or named tuple "
         "in its module"),
        ('{"__fw__":"enum","cls":"tests.test_serialize:Point","v":1}',
         "cannot restore a value of type 'tests.test_serialize.Point': the class is not of the stored kind 'enum'"),
        ('{"__fw__":"timedelta","v":"soon"}',
         "cannot restore a value of type 'timedelta': malformed stored value "
         "(TypeError: unsupported type for timedelta microseconds component: str)"),
        ('{"__fw__":"teleport","v":1}', "cannot restore a value of type 'teleport': unknown type tag"),
        ("{not json", "cannot restore a value of type 'str': not JSON (Expecting property name "
                      "enclosed in double quotes: line 1 column 2 (char 1))"),
    ],
)  # fmt: skip
def test_bad_stored_text_is_a_typed_error(text: str, message: str) -> None:
    with pytest.raises(SerializationError) as info:
        JSONSerializer().loads(text)
    assert str(info.value) == message
    assert info.value.restoring


def test_only_rebuildable_classes_can_be_registered() -> None:
    with pytest.raises(ConfigurationError) as info:
        JSONSerializer([dict])
    assert str(info.value) == (
        "JSONSerializer: classes must be dataclasses, enums or named tuples, got <class 'dict'>"
    )


def test_the_default_serializer_implements_the_protocol() -> None:
    assert isinstance(JSONSerializer(), Serializer)
    assert repr(JSONSerializer([Pair])) == (
        "JSONSerializer(classes=['tests.test_serialize:Pair'], allow_imported=True)"
    )
