"""Module-level task functions for subflow tests on executors whose workers are other
processes (a builder's workflow must pickle to come back to the engine)."""

from __future__ import annotations

from functools import partial

from flowweaver import Task, Workflow


def numbers() -> list[int]:
    return [1, 2, 3]


def square(k: int) -> int:
    return k * k


def build_squares(numbers: list[int]) -> Workflow:
    child = Workflow("squares")
    for k in numbers:
        child.add_task(Task(name=f"square_{k}", fn=partial(square, k)))
    return child


def total(build_squares: dict[str, int]) -> int:
    return sum(build_squares.values())


def ten() -> int:
    return 10


def squares_workflow() -> Workflow:
    """numbers -> build_squares (dynamic child) -> total, and a static child beside them."""
    static = Workflow("static")
    static.add_task(Task(name="ten", fn=ten))
    wf = Workflow("squares_of_numbers")
    wf.add_task(Task(name="numbers", fn=numbers))
    wf.add_task(Task(name="build_squares", fn=build_squares), depends_on=["numbers"])
    wf.add_task(Task(name="total", fn=total), depends_on=["build_squares"])
    wf.add_task(static)
    return wf
