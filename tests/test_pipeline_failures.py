"""How a pipeline run records failures: exact counts always; every record only when it keeps
its results (a run that keeps none keeps the latest ``KEPT_FAILURES``: flat memory)."""

from __future__ import annotations

import logging

import pytest

from flowweaver import Pipeline, PipelineResult, Stage, _pipeline_run

from .conftest import run


async def odd_only(x: int) -> int:
    if x % 2 == 0:
        raise ValueError(f"even {x}")
    return x


async def small(x: int) -> int:
    if x > 7:
        raise KeyError(x)
    return x


def two_stages() -> Pipeline:
    return Pipeline(
        [Stage("Odd", 2, [odd_only], task_attempts=1), Stage("Small", 2, [small], task_attempts=1)]
    )


@pytest.fixture
def keep_three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pipeline_run, "KEPT_FAILURES", 3)


def test_a_stream_keeps_exact_counts_and_only_the_latest_failure_records(
    keep_three: None,
) -> None:
    pipeline = two_stages()

    async def main() -> list[PipelineResult]:
        return [result async for result in pipeline.stream(range(12))]

    ended: list[PipelineResult] = run(main())
    failures = [r for r in ended if r.error is not None]
    assert len(failures) == 8  # six even numbers, then 9 and 11 are too large
    summary = pipeline.get_error_summary()
    assert summary.total_failed == pipeline.get_stats().items_failed == 8
    assert summary.errors_by_type == {"ValueError": 6, "KeyError": 2}
    assert summary.errors_by_stage == {"Odd": 6, "Small": 2}
    # The latest three, oldest first, in the order they failed (= the stream's order).
    assert [f.item_id for f in summary.failed_items] == [r.id for r in failures[-3:]]
    snapshot = pipeline.get_dashboard_snapshot()
    assert list(snapshot.recent_failures) == summary.failed_items
    assert str(summary) == "8 failed (ValueError: 6, KeyError: 2)"


def test_a_run_without_results_keeps_only_the_latest_failure_records(keep_three: None) -> None:
    pipeline = Pipeline([Stage("Odd", 1, [odd_only], task_attempts=1)], collect_results=False)
    assert run(pipeline.run(range(10))) == []
    summary = pipeline.get_error_summary()
    assert summary.total_failed == 5
    assert [f.item_id for f in summary.failed_items] == [4, 6, 8]  # one worker: in order


def test_a_run_that_keeps_its_results_keeps_every_failure_record(keep_three: None) -> None:
    pipeline = two_stages()
    results = run(pipeline.run(range(12)))
    assert [r.id for r in results] == [1, 3, 5, 7]
    summary = pipeline.get_error_summary()
    assert summary.total_failed == 8
    assert sorted(f.item_id for f in summary.failed_items) == [0, 2, 4, 6, 8, 9, 10, 11]


def test_an_item_failure_is_logged_with_its_stage_and_item(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = Pipeline([Stage("Odd", 1, [odd_only], task_attempts=1)])
    with caplog.at_level(logging.INFO, logger="flowweaver.pipeline"):
        run(pipeline.run([{"id": "a", "value": 2}]))
    record, summary = caplog.records
    assert record.getMessage() == (
        "item 'a' failed in stage 'Odd' after 1 attempt(s): ValueError: even 2"
    )
    assert (record.stage, record.item) == ("Odd", "a")  # type: ignore[attr-defined]
    assert (summary.levelno, summary.getMessage()) == (
        logging.WARNING,
        "pipeline 'Odd': 1 of 1 item failed (ValueError 1); see get_error_summary()",
    )
