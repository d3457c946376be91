"""Module-level tasks for the authoring and process-executor tests.

Worker processes import this module to find the functions, so it must stay cheap to import
(standard library and flowweaver only) and must not record ``>>`` edges at import time.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from flowweaver import task

# -- The Flowkit seed's "Parallel Processing" example, verbatim (module level, as a user would
# write it in a module of their own; the pipeline itself is built in the tests).


@task()
def fetch_data():  # type: ignore[no-untyped-def]
    """Fetch initial dataset."""
    return range(1000)


@task()
def process_batch_1(data):  # type: ignore[no-untyped-def]
    """Process first batch."""
    return sum(list(data)[:333])


@task()
def process_batch_2(data):  # type: ignore[no-untyped-def]
    """Process second batch."""
    return sum(list(data)[333:666])


@task()
def process_batch_3(data):  # type: ignore[no-untyped-def]
    """Process third batch."""
    return sum(list(data)[666:])


@task()
def aggregate_results(data, b1, b2, b3):  # type: ignore[no-untyped-def]
    """Combine all results."""
    total = b1 + b2 + b3
    return f"Total: {total}"


# -- Small typed tasks -------------------------------------------------------------------------


@task
def one() -> int:
    return 1


@task
def two() -> int:
    return 2


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def weigh(add: int, two: int) -> int:
    return add * two


@task(name="renamed", retries=1, delay=0.0)
def original_name(one: int) -> int:
    return one * 10


@task
def three() -> int:
    return 3


@task
def ordered(*inputs: object) -> tuple[object, ...]:
    """Its inputs, in the order they arrived."""
    return inputs


@task
def pid() -> int:
    return os.getpid()


def combine(seed: int, *inputs: int | None) -> int:
    """A node of a random graph: its seed plus its inputs (a skipped input counts 0)."""
    return (seed * 7 + sum((x or 0) * (k + 2) for k, x in enumerate(inputs))) % 1_000_003


def is_even(*inputs: int | None) -> bool:
    return sum(x or 0 for x in inputs) % 2 == 0


# -- Leak test: every function logs its name to the file its input names ----------------------


def _log(path: str, name: str) -> None:
    with open(path, "a") as log:
        log.write(name + "\n")


def source(log: str, name: str) -> tuple[str, int]:
    _log(log, name)
    return log, 1


@task
def a_double(a_source: tuple[str, int]) -> tuple[str, int]:
    log, value = a_source
    _log(log, "a_double")
    return log, value * 2


@task
def b_increment(b_source: tuple[str, int]) -> tuple[str, int]:
    log, value = b_source
    _log(log, "b_increment")
    return log, value + 10


@task
def shared(*inputs: tuple[str, int]) -> tuple[str, int]:
    log = inputs[0][0]
    _log(log, "shared")
    return log, sum(value for _, value in inputs)


# -- Process executor: timeouts, crashes, pickling ---------------------------------------------


def block_then_write(folder: str) -> str:
    """Record that it started (with its pid), take far longer than any test allows, then write
    ``done``. A test whose timeout killed the process can prove ``done`` is never written."""
    Path(folder, "started").write_text(str(os.getpid()))
    time.sleep(60)  # the slow work a timeout must stop, not synchronisation
    Path(folder, "done").write_text("too late")
    return "finished"


def slow_first_attempt(folder: str) -> str:
    """Blocks on its first attempt (until killed), returns at once on the next."""
    marker = Path(folder, "first-attempt")
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)
    return f"attempt in {os.getpid()}"


def interrupt_then_block(parent: int, folder: str) -> str:
    """Record its pid, Ctrl-C the parent (the test), then block like ``block_then_write``."""
    Path(folder, "started").write_text(str(os.getpid()))
    os.kill(parent, signal.SIGINT)
    time.sleep(60)
    Path(folder, "done").write_text("too late")
    return "finished"


def read_fifo(path: str) -> str:
    """Blocks until the test writes to the named pipe ``path``: a gate, not a sleep."""
    with open(path) as fifo:
        return fifo.read()


def exit_abruptly(code: int) -> None:
    os._exit(code)


def return_unpicklable() -> object:
    return lambda: None


class Unpicklable(Exception):
    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("no pickling this one")


def raise_unpicklable() -> None:
    raise Unpicklable("bad")


def raise_value_error(message: str) -> None:
    raise ValueError(message)


async def async_double(x: int) -> int:
    return x * 2
