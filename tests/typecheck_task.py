"""Type tests for ``@task``: mypy-only, never run (checked by ``test_decorator.py``).

``mypy --strict`` must pass on this file. The ``type: ignore`` comments are assertions too:
strict mode reports an ignore that is not needed, so if ``@task`` lost the function's
parameter types, the calls marked below would stop being errors and mypy would fail.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

from flowweaver import DAG, Flow, Task, Workflow, task


@task
def inc(x: int, /) -> int:
    return x + 1


@task(retries=2, name="double")
def double(x: int, /, *, label: str = "") -> list[int]:
    return [x, x]


@task()
async def fetch(url: str, /) -> bytes:
    return url.encode()


@task(timeout=1.0, when=lambda value: bool(value), cache_like_future_option=True)
def guarded(value: int, /) -> str:
    return str(value)


# The decorated object is a Task with the function's parameters and return type.
assert_type(inc, Task[[int], int])
assert_type(fetch, Task[[str], Coroutine[Any, Any, bytes]])
assert_type(guarded, Task[[int], str])

# Calling it directly is calling the function, with the same types.
assert_type(inc(1), int)
assert_type(double(2), list[int])
assert_type(double(2, label="x"), list[int])
coroutine = assert_type(fetch("u"), Coroutine[Any, Any, bytes])
coroutine.close()

# Wrong calls are still wrong.
inc("1")  # type: ignore[arg-type]
inc()  # type: ignore[call-arg]
double(2, label=3)  # type: ignore[arg-type]
x: str = inc(1)  # type: ignore[assignment]

# >> and << keep the type of what the chain continues with.
assert_type(inc >> guarded, Task[[int], str])
assert_type(inc >> [guarded, fetch] >> inc, Task[[int], int])
assert_type([double, guarded] >> inc, Task[[int], int])
assert_type(inc << guarded, Task[[int], str])

# The builders.
assert_type(DAG("d").run(), dict[str, Any])
assert_type(Flow("f").add(inc).branch(double, guarded).merge(fetch), Flow)

# The seed's inline style type-checks: a lambda with parameters, written straight into the
# call that takes the task, needs no annotations (mypy infers it against Task[Any, Any]).
workflow = Workflow("w")
workflow.add_task(Task(name="src", fn=lambda: [1, 2]))
workflow.add_task(Task(name="total", fn=lambda src: sum(src)), depends_on=["src"])
workflow.add_task(Task(name="k", fn=lambda k=1: k * 2))
DAG("d").add(Task(name="t", fn=lambda x: x))
DAG("e", tasks=[Task(name="t", fn=lambda x: x)])
Flow("f").add(Task(name="a", fn=lambda: 1)).merge(Task(name="b", fn=lambda a: a + 1))
