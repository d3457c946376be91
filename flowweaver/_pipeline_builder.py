"""``Pipeline.create()``: build a pipeline one stage at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from ._checks import check_callables, check_count
from ._public import publish
from ._stage import Stage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ._pipeline import Pipeline
    from ._pipeline_types import PipelineResult
    from ._tracker import StatusTracker

__all__ = ["PipelineBuilder"]


class PipelineBuilder:
    """Builds a :class:`Pipeline` one stage at a time; made by ``Pipeline.create()``.

    It is given the class it builds, so this module needs no import of ``_pipeline`` (which
    makes builders): the pipeline layer's imports form no cycle.
    """

    def __init__(self, pipeline: type[Pipeline]) -> None:
        self._pipeline = pipeline
        self._stages: list[Stage] = []
        self._collect = True
        self._tracker: StatusTracker | None = None

    def add(
        self,
        name: str,
        tasks: Callable[..., Any] | Sequence[Callable[..., Any]],
        workers: int = 1,
        retries: int | None = None,
        **options: Any,
    ) -> Self:
        """Add a stage. ``retries`` (retries after the first attempt) sets ``task_attempts``;
        ``options`` are any other :class:`Stage` fields."""
        if retries is not None:
            # Checked as the caller wrote it, so a bad value is named as "retries".
            options["task_attempts"] = check_count(f"stage {name!r}", "retries", retries) + 1
        fns = check_callables(f"stage {name!r}", "tasks", tasks)
        self._stages.append(Stage(name, workers, fns, **options))
        return self

    def collect_results(self, collect: bool = True) -> Self:
        """Whether the pipeline keeps results (see :class:`Pipeline`)."""
        self._collect = collect
        return self

    def status_tracker(self, tracker: StatusTracker | None) -> Self:
        """Attach a :class:`StatusTracker`."""
        self._tracker = tracker
        return self

    def build(self) -> Pipeline:
        return self._pipeline(list(self._stages), self._collect, self._tracker)

    async def run(self, items: Iterable[Any], **run_options: Any) -> list[PipelineResult]:
        """Build the pipeline and ``run()`` it."""
        results: list[PipelineResult] = await self.build().run(items, **run_options)
        return results


publish(__name__)  # last: every exported class above exists
