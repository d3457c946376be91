"""``flowweaver.context``: what a stage task can ask of its worker, where AntFlow 0.10 keeps it
(``antflow.context``).

Every name here is also importable from ``flowweaver`` itself.
"""

from ._stage_context import (
    call_rate_has_capacity,
    concurrency_limit,
    get_worker_state,
    rate_limit,
    set_task_status,
)

__all__ = [
    "call_rate_has_capacity",
    "concurrency_limit",
    "get_worker_state",
    "rate_limit",
    "set_task_status",
]
