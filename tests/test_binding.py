"""The one binding rule: how upstream results become a function's arguments (pure, no runs)."""

from __future__ import annotations

import functools
import types
from typing import TYPE_CHECKING, Any

import pytest

from flowweaver import BindingError
from flowweaver._binding import NO_ARGS, ArgSpec, bind, params_of

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


def spec(fn: Callable[..., Any], upstream: Sequence[str]) -> ArgSpec:
    return bind("t", params_of(fn), upstream)


def apply(fn: Callable[..., Any], results: dict[str, object]) -> object:
    """Call fn the way the engine would, with the results of its upstreams in dict order."""
    upstream = list(results)
    s = spec(fn, upstream)
    args = [results[upstream[k]] for k in s.positional]
    kwargs = {name: results[upstream[k]] for name, k in s.keywords}
    return fn(*args, **kwargs)


def test_a_function_without_parameters_gets_nothing() -> None:
    assert spec(lambda: 1, ["a", "b"]) is NO_ARGS


def test_a_function_with_only_defaults_keeps_them() -> None:
    # The closure-capture idiom of the FlowWeaver seed: the default must not be overwritten.
    uid = 7
    assert spec(lambda uid=uid: uid, ["extract"]) is NO_ARGS
    assert spec(lambda uid=uid: uid, ["extract", "other"]) is NO_ARGS
    # ...unless a parameter is named after an upstream, which then receives its result.
    assert apply(lambda extract=None, other=None: (extract, other), {"extract": 1}) == (1, None)


def test_parameters_named_after_upstreams_receive_their_results() -> None:
    def combine(fetch_orders: object, fetch_user: object) -> tuple[object, object]:
        return fetch_orders, fetch_user

    assert apply(combine, {"fetch_user": "U", "fetch_orders": "O"}) == ("O", "U")


def test_other_upstreams_fill_positional_parameters_in_dependency_order() -> None:
    def aggregate(data: int, a: int, b: int, c: int) -> tuple[int, ...]:
        return data, a, b, c

    results: dict[str, object] = {"fetch": 0, "p1": 1, "p2": 2, "p3": 3}
    assert apply(aggregate, results) == (0, 1, 2, 3)


def test_names_and_positions_mix() -> None:
    def f(x: object, extract: object, y: object = None) -> tuple[object, ...]:
        return x, extract, y

    assert apply(f, {"first": 1, "extract": "E", "second": 2}) == (1, "E", 2)


def test_defaulted_parameters_are_filled_too() -> None:
    # The Flowkit approval workflow: load(transform_result, manual=None, auto=None).
    def load(transform_result: int, manual: str | None = None, auto: str | None = None) -> object:
        return transform_result, manual, auto

    assert apply(load, {"transform": 4, "require_manual_approval": None, "auto": "OK"}) == (
        4,
        None,
        "OK",
    )


def test_extra_upstreams_go_to_var_positional_then_var_keyword() -> None:
    def star(*args: object) -> tuple[object, ...]:
        return args

    def kw(first: object, **rest: object) -> tuple[object, dict[str, object]]:
        return first, rest

    assert apply(star, {"a": 1, "b": 2}) == (1, 2)
    assert apply(kw, {"a": 1, "b": 2, "c": 3}) == (1, {"b": 2, "c": 3})


def test_var_positional_still_takes_extras_when_a_keyword_only_is_named() -> None:
    def f(a: object, *rest: object, k: object) -> tuple[object, ...]:
        return a, rest, k

    assert apply(f, {"k": 1, "x": 2, "y": 3}) == (2, (3,), 1)  # f(2, 3, k=1)


def test_too_many_upstreams_is_a_binding_error() -> None:
    with pytest.raises(BindingError) as info:
        spec(lambda x: x, ["a", "b"])
    assert str(info.value) == (
        "task 't' cannot receive its inputs: 2 upstream results but the function takes "
        "1 parameter(s); nothing receives 'b'"
    )


def test_required_parameter_without_upstream_is_a_binding_error() -> None:
    def needs(path: str, mode: str) -> None: ...

    with pytest.raises(BindingError) as info:
        spec(needs, ["a"])
    assert str(info.value) == (
        "task 't' cannot receive its inputs: no upstream result for parameter(s) 'mode' "
        "(upstream tasks: 'a')"
    )


def test_keyword_only_parameter_must_be_named_after_an_upstream() -> None:
    def f(*, a: int, b: int = 0) -> int:
        return a + b

    assert apply(f, {"a": 1}) == 1
    with pytest.raises(BindingError):
        spec(f, ["zzz"])


def test_bound_methods_drop_self() -> None:
    class Loader:
        def load(self, rows: list[int]) -> int:
            return len(rows)

    assert apply(Loader().load, {"x": [1, 2]}) == 2


def test_partials_and_wrapped_functions_use_the_real_signature() -> None:
    def base(a: int, b: int) -> int:
        return a * 10 + b

    @functools.wraps(base)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        return base(*args, **kwargs)

    assert apply(functools.partial(base, b=5), {"x": 1}) == 15
    assert apply(wrapper, {"b": 2, "a": 1}) == 12


def test_unreadable_signatures_receive_everything_positionally() -> None:
    assert apply(max, {"a": 3, "b": 7}) == 7


def _factory(k: int) -> Callable[..., object]:
    def fn(a: object, b: object = None, *rest: object, **named: object) -> object:
        return (k, a, b, rest, named)

    return fn


def test_functions_of_one_code_object_share_their_shape_and_spec() -> None:
    # A 100,000-task workflow built from one factory's closures reads one code object once
    # and holds one Params and one ArgSpec, not one of each per task.
    fns = [_factory(k) for k in range(3)]
    assert params_of(fns[0]) is params_of(fns[1]) is params_of(fns[2])
    assert spec(fns[0], ["x", "y"]) is spec(fns[1], ["p", "q"]) == ArgSpec((0, 1), ())
    # Equal specs of functions with distinct code are one object too.
    assert spec(lambda x, y: 0, ["u", "v"]) is spec(lambda x, y: 1, ["u", "v"])


def test_a_shared_shape_still_binds_by_name_and_by_count() -> None:
    first, second = _factory(1), _factory(2)
    assert apply(first, {"x": 1, "y": 2}) == (1, 1, 2, (), {})
    # Same code, but the upstream names now match parameters: bound by name, not by count.
    assert apply(second, {"b": "B", "a": "A"}) == (2, "A", "B", (), {})
    assert apply(first, {"x": 1, "y": 2, "z": 3}) == (1, 1, 2, (3,), {})

    # Extras that land in **kwargs carry their upstream's name: never answered from the cache.
    def keyed(a: object, **named: object) -> object:
        return (a, named)

    assert apply(keyed, {"x": 1, "y": 2}) == (1, {"y": 2})
    assert apply(keyed, {"p": 1, "q": 2}) == (1, {"q": 2})


def test_defaults_of_a_closure_are_read_from_each_function() -> None:
    # Closures of one code object with different defaults are bound each by its own.
    def make(with_default: bool) -> Callable[..., object]:
        if with_default:
            return lambda a, b=2: (a, b)
        return lambda a, b=2: (a, b)

    shared = make(False)
    assert spec(shared, ["x"]) == ArgSpec((0,), ())
    bare = types.FunctionType(shared.__code__, shared.__globals__, "bare")  # no defaults
    with pytest.raises(BindingError):
        spec(bare, ["x"])
