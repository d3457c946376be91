"""flowweaver: a zero-dependency, type-strict orchestration core.

Tasks and workflows (DAGs) run on one scheduling engine through pluggable executors:
:class:`SequentialExecutor` (inline, deterministic), :class:`ThreadedExecutor`,
:class:`AsyncExecutor` (asyncio, uvloop optional), :class:`ProcessExecutor`, any
``concurrent.futures.Executor`` via :class:`PoolExecutor`, or a Dask cluster via
:class:`DaskExecutor` (the ``dask`` extra). Author them as ``Task`` + ``Workflow``, with
``@task`` + ``>>`` + :class:`DAG`, or with :class:`Flow`: one model.

How upstream results reach a task's function — one rule everywhere:

1. a function that takes no parameters is called with none (so is one whose parameters all
   have defaults, none named after an upstream task: ``lambda uid=uid: fetch(uid)`` keeps
   ``uid``);
2. a parameter named after an upstream task receives that task's result;
3. the other upstream results fill the remaining positional parameters in dependency order;
4. a skipped upstream contributes ``None``.
"""

import importlib as _importlib
import typing as _typing

from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._elements import ElementRecord as ElementRecord
from ._errors import BindingError as BindingError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import CycleError as CycleError
from ._errors import DefinitionError as DefinitionError
from ._errors import DuplicateTaskError as DuplicateTaskError
from ._errors import ElementFailedError as ElementFailedError
from ._errors import EventLoopError as EventLoopError
from ._errors import ExecutionError as ExecutionError
from ._errors import ExecutorShutdownError as ExecutorShutdownError
from ._errors import FlowWeaverError as FlowWeaverError
from ._errors import ItemCancelledError as ItemCancelledError
from ._errors import ItemMismatchError as ItemMismatchError
from ._errors import MapDefinitionError as MapDefinitionError
from ._errors import MapInputError as MapInputError
from ._errors import MapLengthError as MapLengthError
from ._errors import MappedTaskFailedError as MappedTaskFailedError
from ._errors import MissingDependencyError as MissingDependencyError
from ._errors import NotIterableError as NotIterableError
from ._errors import PipelineError as PipelineError
from ._errors import RejectedResultError as RejectedResultError
from ._errors import ResultReleasedError as ResultReleasedError
from ._errors import ResultUnavailableError as ResultUnavailableError
from ._errors import RunLockedError as RunLockedError
from ._errors import SerializationError as SerializationError
from ._errors import StageValidationError as StageValidationError
from ._errors import StateAccessError as StateAccessError
from ._errors import StateCorruptError as StateCorruptError
from ._errors import StateError as StateError
from ._errors import StateLockedError as StateLockedError
from ._errors import StateMismatchError as StateMismatchError
from ._errors import StateVersionError as StateVersionError
from ._errors import SubflowCycleError as SubflowCycleError
from ._errors import TaskFailedError as TaskFailedError
from ._errors import TaskNameCollisionError as TaskNameCollisionError
from ._errors import TaskTimeoutError as TaskTimeoutError
from ._errors import TransferError as TransferError
from ._errors import UnknownDependencyError as UnknownDependencyError
from ._errors import UnknownRunError as UnknownRunError
from ._errors import UnknownTaskError as UnknownTaskError
from ._errors import WorkerDiedError as WorkerDiedError
from ._errors import WorkerStartError as WorkerStartError
from ._errors import WorkflowFailedError as WorkflowFailedError
from ._events import Monitor as Monitor
from ._executors import BaseExecutor as BaseExecutor
from ._executors import Executor as Executor
from ._executors import PoolExecutor as PoolExecutor
from ._executors import SequentialExecutor as SequentialExecutor
from ._executors import ThreadedExecutor as ThreadedExecutor
from ._options import RunOptions as RunOptions
from ._public import LAZY as _LAZY
from ._retry import RetryPolicy as RetryPolicy
from ._run import WorkflowRun as WorkflowRun
from ._status import ChangePolicy as ChangePolicy
from ._status import FailurePolicy as FailurePolicy
from ._status import TaskStatus as TaskStatus
from ._store_types import Serializer as Serializer
from ._store_types import StateEntry as StateEntry
from ._store_types import StateStore as StateStore
from ._task import Task as Task
from ._telemetry import configure_telemetry as configure_telemetry
from ._telemetry import telemetry_enabled as telemetry_enabled
from ._version import __version__ as __version__
from ._workflow import Workflow as Workflow

if _typing.TYPE_CHECKING:
    from ._async import AsyncExecutor as AsyncExecutor
    from ._dag import DAG as DAG
    from ._dashboard import DashboardProtocol as DashboardProtocol
    from ._dashboard_base import BaseDashboard as BaseDashboard
    from ._dashboard_base import ProgressDisplay as ProgressDisplay
    from ._dashboards import CompactDashboard as CompactDashboard
    from ._dashboards import DetailedDashboard as DetailedDashboard
    from ._dashboards import FullDashboard as FullDashboard
    from ._dask import DaskExecutor as DaskExecutor
    from ._decorator import task as task
    from ._flow import Flow as Flow
    from ._history import RunDetail as RunDetail
    from ._history import RunKind as RunKind
    from ._history import RunRecord as RunRecord
    from ._history import RunStatus as RunStatus
    from ._history import StageRecord as StageRecord
    from ._history import TaskRecord as TaskRecord
    from ._history_read import RunHistory as RunHistory
    from ._json_store import JSONFileStore as JSONFileStore
    from ._limiter import Limiter as Limiter
    from ._limiter import LimiterStatistics as LimiterStatistics
    from ._limiter import Rate as Rate
    from ._logging import LogLevel as LogLevel
    from ._logging import configure_logging as configure_logging
    from ._pipeline import Pipeline as Pipeline
    from ._pipeline_builder import PipelineBuilder as PipelineBuilder
    from ._pipeline_types import DashboardSnapshot as DashboardSnapshot
    from ._pipeline_types import ErrorSummary as ErrorSummary
    from ._pipeline_types import FailedItem as FailedItem
    from ._pipeline_types import ItemStatus as ItemStatus
    from ._pipeline_types import PipelineResult as PipelineResult
    from ._pipeline_types import PipelineStats as PipelineStats
    from ._pipeline_types import StageStats as StageStats
    from ._pipeline_types import StatusEvent as StatusEvent
    from ._pipeline_types import TaskEvent as TaskEvent
    from ._pipeline_types import TaskEventType as TaskEventType
    from ._pipeline_types import WorkerMetrics as WorkerMetrics
    from ._pipeline_types import WorkerState as WorkerState
    from ._pipeline_types import WorkerStatus as WorkerStatus
    from ._pool import AsyncFuture as AsyncFuture
    from ._pool_wait import MapResults as MapResults
    from ._pool_wait import WaitStrategy as WaitStrategy
    from ._process import ProcessExecutor as ProcessExecutor
    from ._serialize import JSONSerializer as JSONSerializer
    from ._sqlite_store import SQLiteStore as SQLiteStore
    from ._stage import Stage as Stage
    from ._stage_context import call_rate_has_capacity as call_rate_has_capacity
    from ._stage_context import concurrency_limit as concurrency_limit
    from ._stage_context import get_worker_state as get_worker_state
    from ._stage_context import rate_limit as rate_limit
    from ._stage_context import set_task_status as set_task_status
    from ._state_manager import StateManager as StateManager
    from ._store import MemoryStore as MemoryStore
    from ._tracker import StatusTracker as StatusTracker

# Plain sorted() order (tests/test_exports.py checks it), not ruff's constants-first order.
__all__ = [  # noqa: RUF022
    "AsyncExecutor",
    "AsyncFuture",
    "BaseDashboard",
    "BaseExecutor",
    "BindingError",
    "ChangePolicy",
    "Clock",
    "CompactDashboard",
    "ConfigurationError",
    "CycleError",
    "DAG",
    "DashboardProtocol",
    "DashboardSnapshot",
    "DaskExecutor",
    "DefinitionError",
    "DetailedDashboard",
    "DuplicateTaskError",
    "ElementFailedError",
    "ElementRecord",
    "ErrorSummary",
    "EventLoopError",
    "ExecutionError",
    "Executor",
    "ExecutorShutdownError",
    "FailedItem",
    "FailurePolicy",
    "Flow",
    "FlowWeaverError",
    "FullDashboard",
    "ItemCancelledError",
    "ItemMismatchError",
    "ItemStatus",
    "JSONFileStore",
    "JSONSerializer",
    "Limiter",
    "LimiterStatistics",
    "LogLevel",
    "MapDefinitionError",
    "MapInputError",
    "MapLengthError",
    "MapResults",
    "MappedTaskFailedError",
    "MemoryStore",
    "MissingDependencyError",
    "Monitor",
    "NotIterableError",
    "Pipeline",
    "PipelineBuilder",
    "PipelineError",
    "PipelineResult",
    "PipelineStats",
    "PoolExecutor",
    "ProcessExecutor",
    "ProgressDisplay",
    "Rate",
    "RejectedResultError",
    "ResultReleasedError",
    "ResultUnavailableError",
    "RetryPolicy",
    "RunDetail",
    "RunHistory",
    "RunKind",
    "RunLockedError",
    "RunOptions",
    "RunRecord",
    "RunStatus",
    "SQLiteStore",
    "SequentialExecutor",
    "SerializationError",
    "Serializer",
    "Stage",
    "StageRecord",
    "StageStats",
    "StageValidationError",
    "StateAccessError",
    "StateCorruptError",
    "StateEntry",
    "StateError",
    "StateLockedError",
    "StateManager",
    "StateMismatchError",
    "StateStore",
    "StateVersionError",
    "StatusEvent",
    "StatusTracker",
    "SubflowCycleError",
    "SystemClock",
    "Task",
    "TaskEvent",
    "TaskEventType",
    "TaskFailedError",
    "TaskNameCollisionError",
    "TaskRecord",
    "TaskStatus",
    "TaskTimeoutError",
    "ThreadedExecutor",
    "TransferError",
    "UnknownDependencyError",
    "UnknownRunError",
    "UnknownTaskError",
    "WaitStrategy",
    "WorkerDiedError",
    "WorkerMetrics",
    "WorkerStartError",
    "WorkerState",
    "WorkerStatus",
    "Workflow",
    "WorkflowFailedError",
    "WorkflowRun",
    "call_rate_has_capacity",
    "concurrency_limit",
    "configure_logging",
    "configure_telemetry",
    "get_worker_state",
    "rate_limit",
    "set_task_status",
    "task",
    "telemetry_enabled",
]

# Exported classes say they are `flowweaver.X` (reprs, pickles, stored type tags), not where they
# are defined: private modules may move; this namespace is the public, persisted one. (The
# lazily loaded ones do the same through `_public.publish` when their module loads.)
for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj


# Hidden from type checkers: to them an unknown name stays an error, not an `object`.
if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # once loaded, a plain attribute: no second look-up
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})
