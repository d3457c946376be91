"""Which public names load on first use, and the rule that gives their classes the public
module name.

``import flowweaver`` loads the model (``Task``, ``Workflow``), the engine and the in-process
executors (inline, threads, any ``concurrent.futures`` pool). Everything else — the ``@task`` /
``DAG`` and ``Flow`` styles of writing a workflow, the event-loop executor, pipelines,
dashboards, the stores with their run history and serializer, the process and Dask executors,
logging set-up — loads its module when a program first names it (PEP 562's module
``__getattr__``), so a workflow on the sequential or threaded executor never imports
``asyncio`` and the import stays cheap. Inside the package the same holds for what a plain run
does not use: ``logging``, ``concurrent.futures``, telemetry's spans, the exporters and the
progress line load when first used (see ``tests/test_exports.py``, which holds it).

Exported classes say they are ``flowweaver.X`` (reprs, pickles, stored type tags). A lazily
loaded module may be imported by flowweaver's own code before anyone names its classes, so the
module itself calls :func:`publish` as its last statement: whoever imports it first, its
classes carry the public name.
"""

from __future__ import annotations

import sys

#: Public name -> the private module (in ``flowweaver``) that defines it.
LAZY: dict[str, str] = {
    "AsyncExecutor": "_async",
    "AsyncFuture": "_pool",
    "BaseDashboard": "_dashboard_base",
    "CompactDashboard": "_dashboards",
    "DAG": "_dag",
    "DashboardProtocol": "_dashboard",
    "DashboardSnapshot": "_pipeline_types",
    "DaskExecutor": "_dask",
    "DetailedDashboard": "_dashboards",
    "ErrorSummary": "_pipeline_types",
    "FailedItem": "_pipeline_types",
    "Flow": "_flow",
    "FullDashboard": "_dashboards",
    "ItemStatus": "_pipeline_types",
    "JSONFileStore": "_json_store",
    "JSONSerializer": "_serialize",
    "Limiter": "_limiter",
    "LimiterStatistics": "_limiter",
    "LogLevel": "_logging",
    "MapResults": "_pool_wait",
    "MemoryStore": "_store",
    "Pipeline": "_pipeline",
    "PipelineBuilder": "_pipeline_builder",
    "PipelineResult": "_pipeline_types",
    "PipelineStats": "_pipeline_types",
    "ProcessExecutor": "_process",
    "ProgressDisplay": "_dashboard_base",
    "Rate": "_limiter",
    "RunDetail": "_history",
    "RunHistory": "_history_read",
    "RunKind": "_history",
    "RunRecord": "_history",
    "RunStatus": "_history",
    "SQLiteStore": "_sqlite_store",
    "Stage": "_stage",
    "StageRecord": "_history",
    "StageStats": "_pipeline_types",
    "StateManager": "_state_manager",
    "StatusEvent": "_pipeline_types",
    "StatusTracker": "_tracker",
    "TaskEvent": "_pipeline_types",
    "TaskEventType": "_pipeline_types",
    "TaskRecord": "_history",
    "WaitStrategy": "_pool_wait",
    "WorkerMetrics": "_pipeline_types",
    "WorkerState": "_pipeline_types",
    "WorkerStatus": "_pipeline_types",
    "call_rate_has_capacity": "_stage_context",
    "concurrency_limit": "_stage_context",
    "configure_logging": "_logging",
    "get_worker_state": "_stage_context",
    "rate_limit": "_stage_context",
    "set_task_status": "_stage_context",
    "task": "_decorator",
}


def publish(module: str) -> None:
    """Give the exported classes defined in ``module`` (``flowweaver._x``) their public module."""
    namespace = vars(sys.modules[module])
    short = module.rpartition(".")[2]
    for name, where in LAZY.items():
        obj = namespace.get(name) if where == short else None
        if isinstance(obj, type):
            obj.__module__ = "flowweaver"
