"""How upstream results reach a task's function: the one rule, computed once per task.

The rule, used by every authoring style and every executor:

1. A function that takes no parameters is called with none, whatever its upstreams. So is a
   function whose parameters all have defaults, none of them named after an upstream task: that
   is the closure-capture idiom (``fn=lambda uid=uid: fetch(uid)``), whose defaults must keep
   their values.
2. A parameter named after an upstream task receives that task's result.
3. The remaining upstream results fill the remaining positional parameters in dependency order
   (the order of ``depends_on``, or of ``>>`` declarations); extra results go to ``*args`` or,
   failing that, to ``**kwargs`` under their task names.
4. A skipped upstream contributes ``None``.

Anything the rule cannot satisfy (a required parameter left empty, more results than the
function can take) is a :class:`BindingError` when the task is added, not a ``TypeError`` in the
middle of a run.
"""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import BindingError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["NOTHING", "NO_ARGS", "ArgSpec", "Params", "bind", "is_coroutine_callable", "params_of"]

_VAR_POSITIONAL = inspect.CO_VARARGS
_VAR_KEYWORD = inspect.CO_VARKEYWORDS


@dataclass(frozen=True, slots=True)
class Params:
    """The shape of a callable's parameters, as far as binding cares.

    One object is shared by every function made from the same code (the closures of a loop,
    a factory's functions), so it also remembers the argument specs it has bound by number
    of upstream tasks, for the common case where no parameter is named after one (see
    :func:`bind`).
    """

    positional: tuple[str, ...]
    positional_only: int
    keyword_only: tuple[str, ...]
    required: frozenset[str]
    var_positional: bool
    var_keyword: bool
    # Set on the Params shared by every function of one code object (see _share()): the
    # parameter names an upstream result can be passed to by name, and the specs bound when
    # no upstream name matches one, by number of upstream tasks.
    _by_name: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)
    _by_count: dict[int, ArgSpec] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _share(self) -> Params:
        """Get ready to be shared by many functions: remember bound specs from now on."""
        by_name = (*self.positional[self.positional_only :], *self.keyword_only)
        object.__setattr__(self, "_by_name", frozenset(by_name))
        object.__setattr__(self, "_by_count", {})
        return self

    @property
    def takes_nothing(self) -> bool:
        return not (self.positional or self.keyword_only or self.var_positional or self.var_keyword)


_NO_NAMES: frozenset[str] = frozenset()
#: Used when a signature cannot be read (some builtins): pass every upstream positionally.
_OPAQUE = Params((), 0, (), _NO_NAMES, True, False)
#: A callable that takes no parameters at all (shared: most tasks are `lambda: ...`).
NOTHING = Params((), 0, (), _NO_NAMES, False, False)
_TAKES_ARGUMENTS = _VAR_POSITIONAL | _VAR_KEYWORD
#: Params of plain functions, by ``id`` of their code object, with the shape of their defaults
#: (the code object is kept beside its Params, so the id stays its own). A cache of a pure
#: function of immutable objects, not state anyone can observe; bounded, cleared when full.
#: Building 100,000 tasks from one factory's closures reads one code object once.
_BY_CODE: dict[int, tuple[types.CodeType, tuple[int, tuple[str, ...]], Params]] = {}
_BY_CODE_LIMIT = 4096


def is_coroutine_callable(fn: object) -> bool:
    """Whether calling ``fn`` makes a coroutine (``async def``, a bound async method, an object
    with an async ``__call__``, or a ``functools.partial`` of one of those)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def params_of(fn: Callable[..., object]) -> Params:
    """Read ``fn``'s parameters, cheaply for plain functions, through ``inspect`` otherwise."""
    # getattr with a default: reading `fn.__dict__` would give every function a dict.
    if type(fn) is types.FunctionType and getattr(fn, "__wrapped__", None) is None:
        code = fn.__code__
        defaults = fn.__defaults__
        kw_defaults = fn.__kwdefaults__
        shape = (len(defaults) if defaults else 0, tuple(kw_defaults) if kw_defaults else ())
        known = _BY_CODE.get(id(code))
        if known is not None and known[0] is code and known[1] == shape:
            return known[2]
        params = _from_code(fn, code)
        if params is not NOTHING:
            params._share()
        if len(_BY_CODE) >= _BY_CODE_LIMIT:
            _BY_CODE.clear()
        _BY_CODE[id(code)] = (code, shape, params)
        return params
    target: object = fn
    drop_first = False
    if isinstance(fn, types.MethodType):
        target, drop_first = fn.__func__, True
    # A plain function's code object says everything; inspect.signature is 30x slower and the
    # planner calls this once per task. Wrapped functions go through inspect to see __wrapped__.
    if isinstance(target, types.FunctionType) and getattr(target, "__wrapped__", None) is None:
        params = _from_code(target, target.__code__)
        if drop_first and params.positional:
            first = params.positional[0]
            params = Params(
                params.positional[1:],
                max(params.positional_only - 1, 0),
                params.keyword_only,
                params.required - {first},
                params.var_positional,
                params.var_keyword,
            )
        return params
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return _OPAQUE
    positional_names: list[str] = []
    keyword_names: list[str] = []
    required_names: set[str] = set()
    positional_only = 0
    var_positional = var_keyword = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            var_positional = True
            continue
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
            continue
        if p.kind is p.KEYWORD_ONLY:
            keyword_names.append(p.name)
        else:
            positional_names.append(p.name)
            positional_only += p.kind is p.POSITIONAL_ONLY
        if p.default is p.empty:
            required_names.add(p.name)
    return Params(
        tuple(positional_names),
        positional_only,
        tuple(keyword_names),
        frozenset(required_names),
        var_positional,
        var_keyword,
    )


def _from_code(fn: types.FunctionType, code: types.CodeType) -> Params:
    """The Params of a plain function, read from its code object and defaults."""
    if not (code.co_argcount or code.co_kwonlyargcount or code.co_flags & _TAKES_ARGUMENTS):
        return NOTHING  # the common `lambda: ...`; no allocation
    names = code.co_varnames
    n_pos = code.co_argcount
    positional = names[:n_pos]
    keyword_only = names[n_pos : n_pos + code.co_kwonlyargcount]
    n_defaults = len(fn.__defaults__ or ())
    kw_defaults = fn.__kwdefaults__ or {}
    required = set(positional[: n_pos - n_defaults])
    required.update(k for k in keyword_only if k not in kw_defaults)
    return Params(
        positional,
        code.co_posonlyargcount,
        keyword_only,
        frozenset(required) if required else _NO_NAMES,
        bool(code.co_flags & _VAR_POSITIONAL),
        bool(code.co_flags & _VAR_KEYWORD),
    )


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """Where each upstream result goes: indices into the task's dependency list.

    ``positional`` are passed in order as positional arguments, ``keywords`` by name.
    """

    positional: tuple[int, ...]
    keywords: tuple[tuple[str, int], ...]


NO_ARGS = ArgSpec((), ())
#: Bound specs by value, so equal ones are one object (bounded like _BY_CODE).
_SPECS: dict[tuple[tuple[int, ...], tuple[tuple[str, int], ...]], ArgSpec] = {}


def bind(task_name: str, params: Params, upstream: Sequence[str]) -> ArgSpec:
    """Apply the binding rule (see the module docstring) for one task.

    Args:
        task_name: Named in errors.
        params: The task function's parameters.
        upstream: The task's dependencies, in declared order.

    Raises:
        BindingError: A required parameter would stay empty, or there are more upstream
            results than the function accepts.
    """
    if params.takes_nothing:
        return NO_ARGS
    bound = params._by_count
    if bound is not None and params._by_name.isdisjoint(upstream):  # type: ignore[union-attr]
        # No parameter is named after an upstream task: where each result goes depends only on
        # how many there are (unless extras go to **kwargs, under their names).
        count = len(upstream)
        spec = bound.get(count)
        if spec is None:
            spec = _interned(_bind(task_name, params, upstream))
            if not spec.keywords:
                bound[count] = spec
        return spec
    return _interned(_bind(task_name, params, upstream))


def _interned(spec: ArgSpec) -> ArgSpec:
    """One object per shape: most tasks of a big workflow bind alike."""
    key = (spec.positional, spec.keywords)
    shared = _SPECS.get(key)
    if shared is None:
        if len(_SPECS) >= _BY_CODE_LIMIT:
            _SPECS.clear()
        shared = _SPECS[key] = spec
    return shared


def _bind(task_name: str, params: Params, upstream: Sequence[str]) -> ArgSpec:
    """:func:`bind`, worked out."""
    index = {name: i for i, name in enumerate(upstream)}
    if not (params.required or params.var_positional or params.var_keyword) and not any(
        name in index for name in (*params.positional, *params.keyword_only)
    ):
        return NO_ARGS  # only defaults, none named after an upstream: rule 1
    assigned: dict[str, int] = {}
    # Rule 2: names first. Positional-only parameters cannot be passed by name.
    for name in (*params.positional[params.positional_only :], *params.keyword_only):
        if name in index:
            assigned[name] = index[name]
    used = set(assigned.values())
    leftover = [i for i in range(len(upstream)) if i not in used]
    # Rule 3: the rest fill the empty positional parameters in order.
    for name in params.positional:
        if not leftover:
            break
        if name not in assigned:
            assigned[name] = leftover.pop(0)

    # The longest run of filled parameters from the left travels positionally (faster call,
    # and the only way to reach positional-only ones); the rest go by keyword.
    positional: list[int] = []
    for name in params.positional:
        if name not in assigned:
            break
        positional.append(assigned.pop(name))
    keywords = list(assigned.items())

    missing = [
        name
        for name in (*params.positional[len(positional) :], *params.keyword_only)
        if name in params.required and name not in assigned
    ]
    for name in params.positional[: params.positional_only]:
        if name in assigned:  # a positional-only parameter after a gap cannot be reached
            raise BindingError(task_name, f"positional-only parameter {name!r} cannot be filled")
    if missing:
        names = ", ".join(repr(m) for m in missing)
        have = ", ".join(repr(u) for u in upstream) or "none"
        raise BindingError(
            task_name, f"no upstream result for parameter(s) {names} (upstream tasks: {have})"
        )
    if leftover:
        if params.var_positional and len(positional) == len(params.positional):
            positional.extend(leftover)  # after every positional parameter: into *args
        elif params.var_keyword:
            keywords.extend((upstream[i], i) for i in leftover)
        else:
            extra = ", ".join(repr(upstream[i]) for i in leftover)
            raise BindingError(
                task_name,
                f"{len(upstream)} upstream results but the function takes "
                f"{len(params.positional) + len(params.keyword_only)} parameter(s); "
                f"nothing receives {extra}",
            )
    return ArgSpec(tuple(positional), tuple(keywords))
