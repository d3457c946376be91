"""Code fingerprints: stable across processes, sensitive to what a function does."""

from __future__ import annotations

import dataclasses
import functools
import textwrap

from flowweaver._fingerprint import code_fingerprint

from .conftest import outputs_under_hash_seeds

fp = code_fingerprint


def test_stable_across_processes_and_hash_seeds() -> None:
    code = textwrap.dedent(
        """
        import functools
        from flowweaver._fingerprint import code_fingerprint
        def f(x, y=(1, "a")):
            return [i for i in x if i in {"a", "b", "c", "d"}] + [y, lambda: {1: x}]
        class C:
            def __call__(self, x): return x
        print(code_fingerprint(f), code_fingerprint(functools.partial(f, 1)), code_fingerprint(C()))
        """
    )
    assert len(outputs_under_hash_seeds(code)) == 1


def test_same_code_same_fingerprint_wherever_it_is_defined() -> None:
    def one(x: int) -> int:
        return x + 1

    # Defined elsewhere, other line numbers: still the same code.

    def two(x: int) -> int:
        return x + 1

    assert fp(one) == fp(two)


def test_what_the_function_does_changes_the_fingerprint() -> None:
    base = fp(lambda x: x + 1)
    assert fp(lambda x: x + 2) != base  # a constant
    assert fp(lambda x: x - 1) != base  # an operation
    assert fp(lambda y: y + 1) != base  # a parameter name (keyword binding depends on it)
    assert fp(lambda x: [x + 1 for _ in range(1)]) != fp(lambda x: [x + 2 for _ in range(1)])
    assert fp(lambda x: abs(x)) != fp(lambda x: len(x))  # a global name


def test_default_and_closure_values_count_unless_they_have_no_stable_form() -> None:
    def make(value: object) -> object:
        return lambda: value

    assert fp(lambda n=1: n) != fp(lambda n=2: n)
    assert fp(make(1)) != fp(make(2))
    assert fp(make({"a": (1, 2)})) == fp(make({"a": (1, 2)}))
    assert fp(make(object())) == fp(make(object()))  # only its type can be said


def test_a_captured_class_counts_by_its_name() -> None:
    assert fp(lambda conv=int: conv("5")) != fp(lambda conv=float: conv("5"))
    assert fp(lambda kinds=(int, str): kinds) != fp(lambda kinds=(int, bytes): kinds)
    assert fp(lambda conv=int: conv("5")) == fp(lambda conv=int: conv("5"))


def test_mutable_captured_values_count_by_type_only() -> None:
    # A list a task appends to, a config dict, a connection: their contents change while the
    # code does not; hashing them would make every task look changed on resume.
    @dataclasses.dataclass(frozen=True)
    class Limits:
        rows: int

    def make(value: object) -> object:
        return lambda: value

    assert fp(make([1])) == fp(make([1, 2]))
    assert fp(make({"a": 1})) == fp(make({"a": 2}))
    assert fp(make([1])) != fp(make({"a": 1}))  # a different type is a different task
    assert fp(make((1, "x"))) != fp(make((1, "y")))  # immutable: by value
    assert fp(make(Limits(1))) != fp(make(Limits(2)))  # frozen dataclass of constants
    assert fp(make((1, [2]))) == fp(make((1, [3])))  # a tuple holding a list is not constant


def test_wrappers_partials_methods_objects_and_builtins() -> None:
    def work(x: int, scale: int = 1) -> int:
        return x * scale

    @functools.wraps(work)
    def wrapper(*args: int) -> int:
        return work(*args)

    class Job:
        def __call__(self) -> int:
            return 1

        def run(self) -> int:
            return 2

    assert fp(functools.partial(work, scale=2)) != fp(functools.partial(work, scale=3))
    assert fp(wrapper) != fp(work)
    assert fp(Job()) == fp(Job()) != fp(Job().run)
    assert fp(len) != fp(abs)
    assert fp(int) != fp(str)


def test_a_function_that_refers_to_itself_terminates() -> None:
    def fact(n: int) -> int:
        return 1 if n < 2 else n * fact(n - 1)

    assert len(fp(fact)) == 32
