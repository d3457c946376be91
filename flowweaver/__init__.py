"""flowweaver: a zero-dependency, type-strict orchestration core.

Tasks and workflows (DAGs) run on one scheduling engine through pluggable executors:
:class:`SequentialExecutor` (inline, deterministic), :class:`ThreadedExecutor`,
:class:`AsyncExecutor` (asyncio, uvloop optional), any ``concurrent.futures.Executor`` via
:class:`PoolExecutor`, or a Dask cluster via :class:`DaskExecutor` (the ``dask`` extra).

How upstream results reach a task's function — one rule everywhere:

1. a function that takes no parameters is called with none (so is one whose parameters all
   have defaults, none named after an upstream task: ``lambda uid=uid: fetch(uid)`` keeps
   ``uid``);
2. a parameter named after an upstream task receives that task's result;
3. the other upstream results fill the remaining positional parameters in dependency order;
4. a skipped upstream contributes ``None``.
"""

from ._async import AsyncExecutor as AsyncExecutor
from ._dask import DaskExecutor as DaskExecutor
from ._engine import RunOptions as RunOptions
from ._errors import BindingError as BindingError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import CycleError as CycleError
from ._errors import DefinitionError as DefinitionError
from ._errors import DuplicateTaskError as DuplicateTaskError
from ._errors import EventLoopError as EventLoopError
from ._errors import ExecutionError as ExecutionError
from ._errors import FlowWeaverError as FlowWeaverError
from ._errors import MissingDependencyError as MissingDependencyError
from ._errors import ResultUnavailableError as ResultUnavailableError
from ._errors import SerializationError as SerializationError
from ._errors import TaskFailedError as TaskFailedError
from ._errors import TaskTimeoutError as TaskTimeoutError
from ._errors import UnknownDependencyError as UnknownDependencyError
from ._errors import UnknownTaskError as UnknownTaskError
from ._errors import WorkflowFailedError as WorkflowFailedError
from ._events import Monitor as Monitor
from ._executors import BaseExecutor as BaseExecutor
from ._executors import Executor as Executor
from ._executors import PoolExecutor as PoolExecutor
from ._executors import SequentialExecutor as SequentialExecutor
from ._executors import ThreadedExecutor as ThreadedExecutor
from ._retry import Clock as Clock
from ._retry import RetryPolicy as RetryPolicy
from ._retry import SystemClock as SystemClock
from ._run import WorkflowRun as WorkflowRun
from ._status import FailurePolicy as FailurePolicy
from ._status import TaskStatus as TaskStatus
from ._task import Task as Task
from ._workflow import Workflow as Workflow

__version__ = "0.3.0"

__all__ = [
    "AsyncExecutor",
    "BaseExecutor",
    "BindingError",
    "Clock",
    "ConfigurationError",
    "CycleError",
    "DaskExecutor",
    "DefinitionError",
    "DuplicateTaskError",
    "EventLoopError",
    "ExecutionError",
    "Executor",
    "FailurePolicy",
    "FlowWeaverError",
    "MissingDependencyError",
    "Monitor",
    "PoolExecutor",
    "ResultUnavailableError",
    "RetryPolicy",
    "RunOptions",
    "SequentialExecutor",
    "SerializationError",
    "SystemClock",
    "Task",
    "TaskFailedError",
    "TaskStatus",
    "TaskTimeoutError",
    "ThreadedExecutor",
    "UnknownDependencyError",
    "UnknownTaskError",
    "Workflow",
    "WorkflowFailedError",
    "WorkflowRun",
]
