"""OpenTelemetry, optional: spans and metrics for workflow runs and pipeline runs.

Design:

* **One switch.** :func:`configure_telemetry` turns it on for the process (like logging's
  configuration, it is process-wide by nature: the OpenTelemetry providers are). Until then
  nothing here imports ``opentelemetry`` and every run pays one ``is None`` test per task
  attempt — the engine asks :func:`workflow_telemetry` once per run, which returns None.
* **Spans.** A workflow run is a span ``workflow <name>`` nested under whatever span is current
  where the run starts; each task attempt is a child span ``task <name>`` (attributes:
  ``flowweaver.workflow``, ``.run_id``, ``.task``, ``.attempt``, ``.executor``). A failed
  attempt records its exception and sets the span's status to error. On the executors whose
  calls run in this process (sequential, threaded, async) the task's span is the *current*
  span inside the task's code, so spans a task makes nest under it; calls that cross to another
  process (processes, Dask) keep their spans on this side only.
  A pipeline run is a span ``pipeline <name>`` with a child per stage attempt of an item
  (``stage <name>``: ``flowweaver.stage``, ``.worker``, ``.item_id``, ``.attempt``) and a
  grandchild per task attempt (``task <name>``).
* **Metrics** (meter ``flowweaver``): counters ``flowweaver.tasks.completed``, ``.failed``,
  ``.retried`` and histogram ``flowweaver.task.duration`` (seconds, per attempt) for workflow
  tasks; ``flowweaver.items.processed``, ``.failed``, ``.retried`` for pipeline items (task
  attempts of stages go to the same duration histogram, with a ``flowweaver.stage``
  attribute).

The spans and instruments themselves are in :mod:`flowweaver._telemetry_spans`, loaded when
telemetry is turned on: this module is all a run without telemetry loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from ._telemetry_spans import Instruments, PipelineTelemetry, WorkflowTelemetry

__all__ = [
    "configure_telemetry",
    "pipeline_telemetry",
    "telemetry_enabled",
    "workflow_telemetry",
]


class _Switch:
    """The process's telemetry configuration (None: off)."""

    __slots__ = ("instruments",)

    def __init__(self) -> None:
        self.instruments: Instruments | None = None


_SWITCH = _Switch()


def configure_telemetry(
    enabled: bool = True,
    *,
    tracer_provider: object | None = None,
    meter_provider: object | None = None,
) -> None:
    """Turn OpenTelemetry spans and metrics for every workflow and pipeline run on (or off).

    Args:
        enabled: True to record, False to stop (runs already going keep what they have).
        tracer_provider: The ``TracerProvider`` to use (default: OpenTelemetry's global one).
        meter_provider: The ``MeterProvider`` to use (default: the global one).

    Raises:
        MissingDependencyError: The ``otel`` extra is not installed (an ``ImportError``).
        ConfigurationError: ``enabled`` is not a bool.
    """
    if not isinstance(enabled, bool):
        raise ConfigurationError(f"configure_telemetry: enabled must be a bool, got {enabled!r}")
    if not enabled:
        _SWITCH.instruments = None
        return
    from ._telemetry_spans import Instruments

    _SWITCH.instruments = Instruments(tracer_provider, meter_provider)


def telemetry_enabled() -> bool:
    """Whether :func:`configure_telemetry` turned spans and metrics on."""
    return _SWITCH.instruments is not None


def workflow_telemetry(workflow: str, run_id: str) -> WorkflowTelemetry | None:
    """The telemetry of a starting workflow run, or None when it is off (the fast path)."""
    instruments = _SWITCH.instruments
    if instruments is None:
        return None
    from ._telemetry_spans import WorkflowTelemetry

    return WorkflowTelemetry(instruments, workflow, run_id)


def pipeline_telemetry(pipeline: str) -> PipelineTelemetry | None:
    """The telemetry of a starting pipeline run, or None when it is off."""
    instruments = _SWITCH.instruments
    if instruments is None:
        return None
    from ._telemetry_spans import PipelineTelemetry

    return PipelineTelemetry(instruments, pipeline)
