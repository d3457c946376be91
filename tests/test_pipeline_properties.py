"""Invariants over random pipelines (hypothesis): random stages, worker counts, retry modes,
queue sizes, sync/async tasks and failure schedules.

For every run: every item fed ends exactly once (a result or a recorded failure); an item
succeeds exactly when each stage's failures fit in its attempts; ``run()`` returns the successes
in input order with the expected values. The same holds when the consumer of ``stream()`` walks
away early: what it did not see is recorded, once.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver import Pipeline, SequentialExecutor, Stage, StatusTracker

from .conftest import WAIT, FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True)
class StageSpec:
    workers: int
    per_stage: bool
    attempts: int
    capacity: int | None
    is_async: bool
    two_tasks: bool


@dataclass(frozen=True)
class Scenario:
    stages: list[StageSpec]
    items: int
    fails: list[list[int]]  # fails[stage][item]: failed attempts before the stage succeeds
    executor: str


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    specs = [
        StageSpec(
            workers=draw(st.integers(1, 4)),
            per_stage=draw(st.booleans()),
            attempts=draw(st.integers(1, 3)),
            capacity=draw(st.sampled_from([None, 0, 1, 2])),
            is_async=draw(st.booleans()),
            two_tasks=draw(st.booleans()),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    items = draw(st.integers(0, 40))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    rate = draw(st.sampled_from([0.0, 0.1, 0.4]))
    fails = [
        [rng.choice([1, 2, 3]) if rng.random() < rate else 0 for _ in range(items)] for _ in specs
    ]
    return Scenario(specs, items, fails, draw(st.sampled_from(["threads", "sequential"])))


def build(
    scenario: Scenario, tracker: StatusTracker | None = None
) -> tuple[Pipeline, Counter[tuple[int, int]]]:
    calls: Counter[tuple[int, int]] = Counter()
    lock = threading.Lock()

    def make_tasks(index: int, spec: StageSpec) -> list[Any]:
        def first(value: tuple[int, int]) -> tuple[int, int]:
            item, total = value
            with lock:
                calls[index, item] += 1
                attempt = calls[index, item]
            if attempt <= scenario.fails[index][item]:
                raise RuntimeError(f"stage {index} item {item} attempt {attempt}")
            return item, total + index + 1

        def second(value: tuple[int, int]) -> tuple[int, int]:
            return value[0], value[1] * 2

        async def first_async(value: tuple[int, int]) -> tuple[int, int]:
            await asyncio.sleep(0)
            return first(value)

        async def second_async(value: tuple[int, int]) -> tuple[int, int]:
            return second(value)

        tasks = [first_async, second_async] if spec.is_async else [first, second]
        return tasks if spec.two_tasks else tasks[:1]

    stages = [
        Stage(
            f"S{i}",
            spec.workers,
            make_tasks(i, spec),
            retry="per_stage" if spec.per_stage else "per_task",
            task_attempts=spec.attempts,
            stage_attempts=spec.attempts,
            task_wait_seconds=0.5,
            queue_capacity=spec.capacity,
        )
        for i, spec in enumerate(scenario.stages)
    ]
    executor = SequentialExecutor() if scenario.executor == "sequential" else None
    pipeline = Pipeline(stages, status_tracker=tracker, executor=executor, clock=FakeClock())
    return pipeline, calls


def expected(scenario: Scenario) -> dict[int, int]:
    """The value each succeeding item ends with (items that fail are absent)."""
    out = {}
    for item in range(scenario.items):
        total = 0
        for index, spec in enumerate(scenario.stages):
            if scenario.fails[index][item] >= spec.attempts:
                break
            total += index + 1
            if spec.two_tasks:
                total *= 2
        else:
            out[item] = total
    return out


def check_accounting(pipeline: Pipeline, fed: int, seen: set[int]) -> None:
    stats = pipeline.get_stats()
    failed = [f.item_id for f in pipeline.get_error_summary().failed_items]
    assert stats.items_processed + stats.items_failed == fed
    assert stats.items_in_flight == 0
    assert len(failed) == len(set(failed)) == stats.items_failed
    assert not (set(failed) & seen)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_every_item_ends_once_and_results_keep_input_order(scenario: Scenario) -> None:
    pipeline, _ = build(scenario)

    async def main() -> Any:
        async with asyncio.timeout(WAIT):
            return await pipeline.run([(i, 0) for i in range(scenario.items)])

    results = asyncio.run(main())
    want = expected(scenario)
    assert [r.id for r in results] == sorted(want)
    assert {r.id: r.value[1] for r in results} == want
    check_accounting(pipeline, scenario.items, {r.id for r in results})
    failed = {f.item_id for f in pipeline.get_error_summary().failed_items}
    assert failed == set(range(scenario.items)) - set(want)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.integers(0, 40))
def test_leaving_a_stream_early_still_accounts_for_every_item(
    scenario: Scenario, stop_after: int
) -> None:
    tracker = StatusTracker()
    pipeline, _ = build(scenario, tracker)
    pulled: list[int] = []

    def source() -> Iterator[Any]:
        for i in range(scenario.items):
            pulled.append(i)
            yield (i, 0)

    async def main() -> dict[int, bool]:
        seen: dict[int, bool] = {}
        async with asyncio.timeout(WAIT):
            stream = pipeline.stream(source())
            async for result in stream:
                assert result.id not in seen
                seen[result.id] = result.is_success
                if len(seen) >= stop_after:
                    break
            await stream.aclose()
            assert asyncio.all_tasks() == {asyncio.current_task()}
        return seen

    seen = asyncio.run(main())
    stats = pipeline.get_stats()
    fed = stats.items_processed + stats.items_failed
    assert fed == len(pulled)  # the one the feeder held when the stream was left ended too
    assert stats.items_in_flight == 0
    failed = [f.item_id for f in pipeline.get_error_summary().failed_items]
    assert len(failed) == len(set(failed)) == stats.items_failed
    last = f"S{len(scenario.stages) - 1}"
    ended = {}
    for item in range(fed):
        status = tracker.get_status(item)
        assert status is not None
        assert status.status == "failed" or (status.status == "completed" and status.stage == last)
        ended[item] = status.status == "completed"
    assert sum(ended.values()) == stats.items_processed
    assert {i for i, ok in ended.items() if not ok} == set(failed)
    assert all(ended[i] == ok for i, ok in seen.items())  # what was yielded is what happened
