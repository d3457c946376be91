"""Run options: what every ``execute`` / ``execute_async`` (and ``DAG.run``, ``Flow.run``)
accepts as keyword arguments, and their validation, in one place."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence  # noqa: TC003 - get_type_hints(RunOptions)
from typing import TypedDict

from ._checks import check_flag, check_number, check_sequence_of
from ._clock import Clock, SystemClock
from ._errors import ConfigurationError
from ._events import Monitor
from ._status import ChangePolicy, FailurePolicy
from ._store_types import StateStore

__all__ = ["RunOptions", "check_options", "check_owner_timeout", "check_state_options"]


class RunOptions(TypedDict, total=False):
    """Options every ``execute`` / ``execute_async`` accepts as keyword arguments.

    Attributes:
        failure_policy: ``FailurePolicy.FAIL_FAST`` (default) or ``CONTINUE`` (or their string
            values ``"fail_fast"`` / ``"continue"``).
        monitors: :class:`Monitor` objects that watch the run.
        clock: Where retry back-off waits come from (default: the system clock).
        run_id: An identity for the run (default: a random hex string). With a ``store``,
            running again with the same run id resumes the run.
        progress: Show a progress line on standard error (one self-updating line on a
            terminal, periodic plain lines otherwise).
        store: A :class:`StateStore` that makes the run durable: each task's result is
            committed as it completes, and a run with the same workflow name and ``run_id``
            reuses committed results instead of running those tasks again. It also holds
            the cache of ``Task(cache=True)``.
        on_changed: What resuming does with a committed task whose code or inputs changed:
            ``"rerun"`` (default) or ``"error"`` (see :class:`ChangePolicy`).
        owner_timeout: With a ``store`` and a ``run_id``: how long to wait, in seconds, when
            another run of the same workflow and run id is in progress (a run id has one
            owner at a time) before :class:`RunLockedError`. ``0`` (default) does not wait;
            ``None`` waits as long as it takes.
        observer_timeout: Seconds an async callback's or monitor's awaitable may run before it
            is cancelled, logged and disabled for the rest of the run (default 10; None: no
            bound). Once the run is asked to stop, observers get at most 0.5 s more in all.
        keep_results: Keep only the results of the tasks named here, and release every
            other result once the tasks that read it have ended (their retries too), for
            runs whose intermediate results are large. Reading a released result raises
            :class:`~flowweaver.ResultReleasedError`. Default None: every result is kept.
    """

    failure_policy: FailurePolicy | str
    monitors: Sequence[Monitor]
    clock: Clock
    run_id: str
    progress: bool
    store: StateStore
    on_changed: ChangePolicy | str
    owner_timeout: float | None
    observer_timeout: float | None
    keep_results: Collection[str] | None


_OPTION_NAMES = frozenset(RunOptions.__annotations__)


def check_options(options: RunOptions) -> tuple[FailurePolicy, list[Monitor], Clock, str]:
    """Validate a run's options; return its policy, monitors, clock and run id.

    Raises:
        ConfigurationError: An unknown option, or a bad value (the message names it).
    """
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise ConfigurationError(
            f"unknown run option(s) {sorted(unknown)!r}; expected some of {sorted(_OPTION_NAMES)!r}"
        )
    raw_policy = options.get("failure_policy", FailurePolicy.FAIL_FAST)
    try:
        policy = FailurePolicy(raw_policy)
    except ValueError:
        raise ConfigurationError(
            f"failure_policy must be one of {[p.value for p in FailurePolicy]!r}, "
            f"got {raw_policy!r}"
        ) from None
    monitors: list[Monitor] = check_sequence_of(
        "execute", "monitors", options.get("monitors", ()), Monitor, "Monitor objects"
    )
    if check_flag("execute", "progress", options.get("progress", False)):
        from ._progress import ProgressMonitor  # only a run that shows progress loads it

        monitors.append(ProgressMonitor())
    clock = options.get("clock") or SystemClock()
    if not isinstance(clock, Clock):
        raise ConfigurationError(f"clock must implement Clock, got {clock!r}")
    run_id = options.get("run_id", None)
    if run_id is None:
        run_id = os.urandom(8).hex()  # 16 hex digits, as before; uuid would cost the import
    elif not isinstance(run_id, str) or not run_id:  # "" would silently be a fresh run
        raise ConfigurationError(f"run_id must be a non-empty str, got {run_id!r}")
    if "store" in options or "on_changed" in options:
        check_state_options(options)
    if "owner_timeout" in options:
        check_owner_timeout(options)
    return policy, monitors, clock, run_id


def check_owner_timeout(options: RunOptions) -> float | None:
    """Validate ``owner_timeout`` (default 0: do not wait)."""
    timeout = options.get("owner_timeout", 0.0)
    return None if timeout is None else check_number("execute", "owner_timeout", timeout)


def check_state_options(options: RunOptions) -> tuple[StateStore | None, ChangePolicy]:
    """Validate ``store`` and ``on_changed``."""
    store = options.get("store")
    if store is not None and not isinstance(store, StateStore):
        raise ConfigurationError(f"store must implement StateStore, got {store!r}")
    raw = options.get("on_changed", ChangePolicy.RERUN)
    try:
        return store, ChangePolicy(raw)
    except ValueError:
        raise ConfigurationError(
            f"on_changed must be one of {[p.value for p in ChangePolicy]!r}, got {raw!r}"
        ) from None
