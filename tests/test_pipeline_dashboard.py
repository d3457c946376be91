"""Dashboards: polled every interval through the clock, never fed per item, never fatal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowweaver import ConfigurationError, DashboardProtocol, Pipeline, Stage

from .conftest import WAIT, FakeClock, run


async def inc(x: int) -> int:
    return x + 1


class TickClock(FakeClock):
    """Each sleep_async waits until the test calls tick()."""

    def __init__(self) -> None:
        super().__init__()
        self.sleepers: list[asyncio.Future[None]] = []

    async def sleep_async(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        future = asyncio.get_running_loop().create_future()
        self.sleepers.append(future)
        await future

    def tick(self) -> None:
        for future in self.sleepers:
            if not future.done():
                future.set_result(None)


class Board:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_start(self, pipeline: Any, total_items: int | None) -> None:
        self.calls.append(("start", total_items))

    def on_update(self, snapshot: Any) -> None:
        self.calls.append(("update", snapshot.pipeline_stats.items_processed))

    def on_finish(self, results: Any, summary: Any) -> None:
        self.calls.append(("finish", (len(results), summary.total_failed)))


def test_a_custom_dashboard_is_polled_every_interval() -> None:
    gate: list[asyncio.Event] = []

    async def wait_odd(x: int) -> int:
        if x % 2:
            await gate[0].wait()
        return x

    clock = TickClock()
    board = Board()
    pipeline = Pipeline([Stage("S", 4, [wait_odd])], clock=clock)

    async def main() -> None:
        gate.append(asyncio.Event())
        running = asyncio.ensure_future(
            pipeline.run(range(4), custom_dashboard=board, dashboard_update_interval=0.25)
        )
        for _ in range(20):
            await asyncio.sleep(0)
        assert board.calls == [("start", 4)]  # nothing until the first interval passes
        clock.tick()
        for _ in range(20):
            await asyncio.sleep(0)
        assert board.calls[-1] == ("update", 2)  # the even items are done
        gate[0].set()
        await running

    run(main())
    assert board.calls[-2:] == [("update", 4), ("finish", (4, 0))]
    assert set(clock.sleeps) == {0.25}
    assert isinstance(board, DashboardProtocol)


def test_dashboard_methods_may_be_async_and_raising_ones_are_disabled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class Flaky:
        async def on_start(self, pipeline: Any, total: int | None) -> None:
            calls.append("start")

        async def on_update(self, snapshot: Any) -> None:
            calls.append("update")
            raise RuntimeError("render bug")

        def on_finish(self, results: Any, summary: Any) -> None:
            calls.append("finish")

    pipeline = Pipeline([Stage("S", 1, [inc])], clock=FakeClock())
    with caplog.at_level("ERROR", logger="flowweaver"):
        results = run(pipeline.run([1, 2], custom_dashboard=Flaky()))
    assert [r.value for r in results] == [2, 3]
    assert calls == ["start", "update", "finish"]
    assert [r.getMessage() for r in caplog.records] == [
        "dashboard on_update raised; it is disabled for the rest of this run"
    ]


def test_on_finish_runs_when_the_run_is_cancelled() -> None:
    board = Board()

    async def forever(x: int) -> int:
        await asyncio.sleep(WAIT * 100)
        return x

    pipeline = Pipeline([Stage("S", 1, [forever])])

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pipeline.run([1, 2], custom_dashboard=board), 0.01)

    run(main())
    assert board.calls == [("start", 2), ("update", 0), ("finish", (0, 2))]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"progress": True, "dashboard": "compact"},
         "run(): progress, dashboard and custom_dashboard are mutually exclusive, "
         "got progress=True and dashboard='compact'"),
        ({"dashboard": "fancy"},
         "run(): dashboard must be one of ['compact', 'detailed', 'full'], got 'fancy'"),
        ({"progress": True, "dashboard_update_interval": 0},
         "run(): dashboard_update_interval must be a finite number > 0, got 0"),
        ({"custom_dashboard": object()}, None),
        ({"progress": "yes"}, "run(): progress must be a bool, got 'yes'"),
    ],
)  # fmt: skip
def test_display_options_are_checked(options: dict[str, Any], message: str | None) -> None:
    pipeline = Pipeline([Stage("S", 1, [inc])])
    with pytest.raises(ConfigurationError) as info:
        run(pipeline.run([1], **options))
    if message is None:
        assert str(info.value).startswith(
            "run(): custom_dashboard must have on_start, on_update and on_finish methods, got "
        )
    else:
        assert str(info.value) == message
    assert pipeline.get_stats().items_processed == 0  # refused before anything ran
