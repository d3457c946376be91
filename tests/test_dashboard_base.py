"""BaseDashboard (AntFlow 0.10's ABC) and ProgressDisplay, the dependency-free bar."""

from __future__ import annotations

import io
from typing import Any

import pytest

from flowweaver import (
    BaseDashboard,
    CompactDashboard,
    ConfigurationError,
    DetailedDashboard,
    FullDashboard,
    Pipeline,
    ProgressDisplay,
    Stage,
)

from .conftest import run


async def ident(x: Any) -> Any:
    return x


async def fails_on_two(x: int) -> int:
    if x == 2:
        raise ValueError(x)
    return x


def test_base_dashboard_is_abstract_and_on_update_calls_render() -> None:
    with pytest.raises(TypeError):
        BaseDashboard()  # type: ignore[abstract]
    seen: list[int] = []

    class Counter(BaseDashboard):
        def render(self, snapshot: Any) -> None:
            seen.append(snapshot.pipeline_stats.items_processed)

    async def main() -> None:
        pipeline = Pipeline([Stage("A", 1, [ident])])
        await pipeline.run(range(3), custom_dashboard=Counter())

    run(main())
    assert seen and seen[-1] == 3  # the final update, drawn through render()
    for dashboard in (CompactDashboard, DetailedDashboard, FullDashboard):
        assert issubclass(dashboard, BaseDashboard)


def test_progress_display_draws_antflow_bar() -> None:
    out = io.StringIO()
    ticks = iter([0.0])  # the start; every later reading is 2 s on

    async def main() -> None:
        pipeline = Pipeline(
            [Stage("A", 1, [fails_on_two], task_attempts=1), Stage("B", 1, [ident])]
        )
        display = ProgressDisplay(0, width=10, stream=out, clock=lambda: next(ticks, 2.0))
        await pipeline.run(range(4), custom_dashboard=display)

    run(main())
    text = out.getvalue()
    assert text.startswith("\r[░░░░░░░░░░]   0.0% | 0/4   ")
    assert "\r[██████████] 100.0% | 4/4 | 2.0/s | 1 failed   " in text
    assert text.endswith("\nCompleted: 3 ok, 1 failed in 2.0s\n")


def test_progress_display_line_and_validation() -> None:
    bar = ProgressDisplay(300, fill_char="#", empty_char="-")
    assert (
        bar.line(126, 2, 24.5)
        == f"\r[{'#' * 12}{'-' * 18}]  42.0% | 126/300 | 24.5/s | 2 failed   "
    )
    assert ProgressDisplay(0).line(0, 0, 0.0) == f"\r[{'█' * 30}] 100.0% | 0/0   "
    bad: list[tuple[dict[str, Any], str]] = [
        ({"total": -1}, "ProgressDisplay: total must be an int >= 0, got -1"),
        ({"total": 1, "width": 0}, "ProgressDisplay: width must be an int >= 1, got 0"),
        (
            {"total": 1, "fill_char": "##"},
            "ProgressDisplay: fill_char must be one character, got '##'",
        ),
    ]
    for kwargs, message in bad:
        with pytest.raises(ConfigurationError) as info:
            ProgressDisplay(**kwargs)
        assert str(info.value) == message
