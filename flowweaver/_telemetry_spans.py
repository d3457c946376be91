"""The spans and metrics of :mod:`flowweaver._telemetry` (see its docstring for the design):
loaded only once :func:`~flowweaver.configure_telemetry` turns telemetry on.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ._binding import is_coroutine_callable
from ._errors import MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Instruments", "PipelineTelemetry", "WorkflowTelemetry", "in_context"]


class Instruments:
    """The tracer, meter and instruments of an enabled configuration."""

    __slots__ = (
        "context", "duration", "items_failed", "items_processed", "items_retried", "status",
        "tasks_completed", "tasks_failed", "tasks_retried", "trace", "tracer",
    )  # fmt: skip

    def __init__(self, tracer_provider: object, meter_provider: object) -> None:
        try:
            from opentelemetry import context, metrics, trace
            from opentelemetry.trace.status import Status
        except ImportError as error:
            raise MissingDependencyError("configure_telemetry", "otel", "opentelemetry") from error
        from ._version import __version__

        # Any: the SDK's types stay out of ours (the extra is optional).
        self.trace: Any = trace
        self.context: Any = context
        self.status: Any = Status  # not re-exported by opentelemetry.trace for mypy --strict
        self.tracer: Any = self.trace.get_tracer("flowweaver", __version__, tracer_provider)
        meters: Any = metrics
        meter: Any = meters.get_meter("flowweaver", __version__, meter_provider)
        self.tasks_completed = meter.create_counter(
            "flowweaver.tasks.completed", description="workflow tasks that completed"
        )
        self.tasks_failed = meter.create_counter(
            "flowweaver.tasks.failed", description="workflow tasks that failed for good"
        )
        self.tasks_retried = meter.create_counter(
            "flowweaver.tasks.retried", description="failed task attempts that were retried"
        )
        self.duration = meter.create_histogram(
            "flowweaver.task.duration", unit="s", description="duration of one task attempt"
        )
        self.items_processed = meter.create_counter(
            "flowweaver.items.processed", description="pipeline items that went through"
        )
        self.items_failed = meter.create_counter(
            "flowweaver.items.failed", description="pipeline items that failed"
        )
        self.items_retried = meter.create_counter(
            "flowweaver.items.retried", description="failed stage task attempts retried"
        )


def in_context(fn: Callable[..., Any], ctx: object, attach: Any, detach: Any) -> Callable[..., Any]:
    """``fn`` made to run with ``ctx`` as the current OpenTelemetry context (sync or async)."""
    if is_coroutine_callable(fn):

        @functools.wraps(fn)
        async def traced_async(*args: Any, **kwargs: Any) -> Any:
            token = attach(ctx)
            try:
                return await fn(*args, **kwargs)
            finally:
                detach(token)

        return traced_async

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        token = attach(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            detach(token)

    return traced


class WorkflowTelemetry:
    """One workflow run's spans and metrics; the engine calls it (see the module docstring)."""

    __slots__ = ("_attrs", "_ctx", "_i", "_open", "_run_span", "_started", "carries_context")

    def __init__(self, instruments: Instruments, workflow: str, run_id: str) -> None:
        self._i = instruments
        self._attrs: dict[str, Any] = {"flowweaver.workflow": workflow, "flowweaver.run_id": run_id}
        self._run_span: Any = None
        self._ctx: object = None
        self._open: dict[int, Any] = {}  # task index -> its attempt's span
        self._started: dict[int, float] = {}
        #: Whether calls run in this process, where a span can be made current for them.
        self.carries_context = False

    def start(self, executor: str, carries_context: bool) -> None:
        i = self._i
        self._attrs["flowweaver.executor"] = executor
        self.carries_context = carries_context
        self._run_span = span = i.tracer.start_span(
            f"workflow {self._attrs['flowweaver.workflow']}", attributes=self._attrs
        )
        self._ctx = i.trace.set_span_in_context(span)

    def begin(
        self, index: int, task: str, attempt: int, fn: Callable[..., Any], now: float
    ) -> Callable[..., Any]:
        """A task attempt starts: open its span; the function to call (in the span)."""
        i = self._i
        span = i.tracer.start_span(
            f"task {task}",
            context=self._ctx,
            attributes={**self._attrs, "flowweaver.task": task, "flowweaver.attempt": attempt},
        )
        self._open[index] = span
        self._started[index] = now
        if not self.carries_context:
            return fn
        return in_context(fn, i.trace.set_span_in_context(span), i.context.attach, i.context.detach)

    def end(
        self, index: int, task: str, now: float, error: BaseException | None, retried: bool
    ) -> None:
        """A task attempt ended: close its span; count it."""
        span = self._open.pop(index, None)
        if span is None:
            return
        i = self._i
        attrs = {"flowweaver.workflow": self._attrs["flowweaver.workflow"], "flowweaver.task": task}
        i.duration.record(now - self._started.pop(index, now), attrs)
        if error is None:
            i.tasks_completed.add(1, attrs)
        else:
            span.record_exception(error)
            span.set_status(i.status(i.trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            (i.tasks_retried if retried else i.tasks_failed).add(1, attrs)
        span.end()

    def finish(self, failed: int, cancelled: int) -> None:
        """The run ended: close what is still open, then the run's span."""
        i = self._i
        for span in self._open.values():  # abandoned (cancelled) attempts
            span.set_attribute("flowweaver.cancelled", True)
            span.end()
        self._open.clear()
        span = self._run_span
        if span is None:
            return
        span.set_attribute("flowweaver.failed", failed)
        span.set_attribute("flowweaver.cancelled", cancelled)
        if failed:
            span.set_status(i.status(i.trace.StatusCode.ERROR, f"{failed} task(s) failed"))
        span.end()


class PipelineTelemetry:
    """One pipeline run's spans and metrics (see the module docstring)."""

    __slots__ = ("_ctx", "_i", "_name", "_run_span")

    def __init__(self, instruments: Instruments, pipeline: str) -> None:
        self._i = instruments
        self._name = pipeline
        self._run_span = instruments.tracer.start_span(
            f"pipeline {pipeline}", attributes={"flowweaver.pipeline": pipeline}
        )
        self._ctx = instruments.trace.set_span_in_context(self._run_span)

    def stage_span(self, stage: str, worker: str, item_id: object, attempt: int) -> Any:
        """Open the span of one stage attempt of an item."""
        return self._i.tracer.start_span(
            f"stage {stage}",
            context=self._ctx,
            attributes={
                "flowweaver.pipeline": self._name, "flowweaver.stage": stage,
                "flowweaver.worker": worker, "flowweaver.item_id": repr(item_id),
                "flowweaver.attempt": attempt,
            },
        )  # fmt: skip

    def task_span(self, parent: Any, task: str, attempt: int) -> tuple[Any, object]:
        """Open a task attempt's span under a stage span; the span and its context."""
        i = self._i
        span = i.tracer.start_span(
            f"task {task}",
            context=self._ctx if parent is None else i.trace.set_span_in_context(parent),
            attributes={"flowweaver.task": task, "flowweaver.attempt": attempt},
        )
        return span, i.trace.set_span_in_context(span)

    def attach(self, ctx: object) -> object:
        return self._i.context.attach(ctx)

    def detach(self, token: object) -> None:
        self._i.context.detach(token)

    def wrap(self, fn: Callable[..., Any], ctx: object) -> Callable[..., Any]:
        return in_context(fn, ctx, self._i.context.attach, self._i.context.detach)

    def end_span(
        self, span: Any, stage: str, duration: float | None, error: BaseException | None
    ) -> None:
        """Close a stage or task span (a task span with a duration is measured)."""
        i = self._i
        if duration is not None:
            i.duration.record(
                duration, {"flowweaver.pipeline": self._name, "flowweaver.stage": stage}
            )
        if error is not None:
            span.record_exception(error)
            span.set_status(i.status(i.trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def item(self, stage: str, outcome: str) -> None:
        """Count an item that ended (``"processed"``/``"failed"``) or was retried in ``stage``."""
        i = self._i
        counter = {
            "processed": i.items_processed, "failed": i.items_failed, "retried": i.items_retried,
        }[outcome]  # fmt: skip
        counter.add(1, {"flowweaver.pipeline": self._name, "flowweaver.stage": stage})

    def finish(self, failed: int) -> None:
        span = self._run_span
        span.set_attribute("flowweaver.failed", failed)
        if failed:
            i = self._i
            span.set_status(i.status(i.trace.StatusCode.ERROR, f"{failed} item(s) failed"))
        span.end()
