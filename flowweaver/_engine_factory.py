"""Which engine a run gets: one explicit factory, instead of a constructor that surprises.

The plain :class:`~flowweaver._engine.Engine` for most runs; the durable one
(``_durable.DurableEngine``) for a run with a ``store=`` or a ``cache=True`` task; the mapping
one (``_mapping.MapEngine``) for a workflow with mapped tasks; both
(``_durable_map.DurableMapEngine``) when both apply. A run that needs neither feature pays
nothing for them. Every executor builds its engine here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._engine import Engine
from ._workflow import Workflow

if TYPE_CHECKING:
    from ._options import RunOptions
    from ._task import Task

__all__ = ["make_engine"]


def _is_cached(task: Task[..., Any]) -> bool:
    return task._options is not None and task.cache  # a task that sets no option: no read


def make_engine(workflow: Workflow, options: RunOptions) -> Engine:
    """The engine of one run of ``workflow`` (see the module docstring).

    Raises:
        ConfigurationError: ``workflow`` is not a Workflow (``Engine`` says which).
    """
    given: object = workflow  # typed callers cannot get this wrong; others can
    if not isinstance(given, Workflow):
        return Engine(workflow, options)  # it raises the error that names what was given
    durable = options.get("store") is not None or any(map(_is_cached, workflow._tasks))
    # Imported here: a plain run loads neither the stores nor the mapping machinery.
    if workflow._mapped:
        if durable:
            from ._durable_map import DurableMapEngine

            return DurableMapEngine(workflow, options)
        from ._mapping import MapEngine

        return MapEngine(workflow, options)
    if durable:
        from ._durable import DurableEngine

        return DurableEngine(workflow, options)
    return Engine(workflow, options)
