"""Quieter Dask worker logs on a cluster :class:`~flowweaver.DaskExecutor` starts itself.

Dask's workers log every failed attempt of a task as a multi-line ERROR (``Compute Failed``,
the key, the task's repr, the exception and its traceback) on the ``distributed.worker``
logger. flowweaver records the same failure on the task (status, error, attempts, its log
line), so on a local cluster the executor starts, a plugin drops just those records in every
worker, present and future. A cluster you bring is yours: the dask guide shows the same
filter for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ComputeFailedFilter", "quiet_compute_failed"]

#: The plugin's name on the cluster (registering it twice replaces it).
PLUGIN_NAME = "flowweaver-quiet-compute-failed"


class ComputeFailedFilter(logging.Filter):
    """Drops ``distributed.worker``'s ``Compute Failed`` records; lets everything else pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Compute Failed"))


def _install() -> None:
    worker_logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, ComputeFailedFilter) for f in worker_logger.filters):
        worker_logger.addFilter(ComputeFailedFilter())


def quiet_compute_failed(client: Client) -> None:
    """Install :class:`ComputeFailedFilter` in every worker of ``client``'s cluster."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class _Quiet(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            _install()

    client.register_plugin(_Quiet(), name=PLUGIN_NAME)
