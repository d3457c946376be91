"""Pipeline checkpointing: an item that finished the whole pipeline is not processed again.

``Pipeline.run`` / ``stream`` / ``quick`` with ``store=`` and ``run_id=`` give their run a
:class:`Checkpoint`; without a store nothing here runs, and the pipeline's hot path pays one
``is None`` test per item fed and per item leaving the last stage.

Design (the principles of a workflow's resume, ``_durable``, applied to items):

* **Identity.** A pipeline run is ``(pipeline name, run id)``: its committed results live in the
  store namespace :func:`~flowweaver._store.pipeline_namespace` of that pair — never a
  workflow's, another pipeline's or another run id's — keyed by the JSON text of the item's id
  (a dict item's ``"id"``, a plain item's input index: stable only if the input order is).
* **One owner, unique ids.** The run claims its run id on the store for its whole length (see
  :mod:`flowweaver._claim`): a second run of the same pipeline and run id meanwhile gets
  :class:`~flowweaver.RunLockedError`. An item id fed twice in one run fails the second item
  with :class:`~flowweaver.ConfigurationError` naming the id (it would reuse or replace the
  first one's result); the run keeps the ids it has seen (a set of their JSON texts).
* **Restore as fed.** :meth:`Checkpoint.restore` reads the item's record (one ``get``) when the
  item is fed. If its fingerprint matches, the item ends at once as a result flagged
  ``restored``: no stage sees it, no stage or tracker callback fires for it, ``run()`` puts it
  at its input position and ``stream()`` yields it. Otherwise it is fed as usual. One read per
  item, not the whole namespace up front, so a long ``stream()`` keeps its memory flat.
* **Commit before release.** :meth:`Checkpoint.commit` stores an item's result (one ``put``,
  one store transaction) when the item leaves the last stage, *before* it is counted,
  collected, yielded or reported to ``on_success``. A crash loses at most the items inside the
  pipeline; an item whose result was committed is never processed again under that run id.
  (What happens after the commit — ``on_success``, your code around ``stream()`` — may be lost
  to a crash: at most once.)
* **Fingerprint** = hash(stage code, input). Stage code: every stage's tasks (in order), its
  ``skip_if`` and ``unpack_args``, through :func:`~flowweaver._fingerprint.code_fingerprint`,
  computed once per run. Input: the stored text of the value the item enters the first stage
  with (the type name alone when the value has no stored form). A mismatch follows
  ``on_changed``: re-run the item (one warning, for the first such item, and a count at the end
  of the run) or fail it with :class:`~flowweaver.ItemMismatchError`.
* **Failures of the state machinery are item failures**, never committed (so the item runs
  again on a rerun): a result with no stored form (:class:`~flowweaver.SerializationError`
  naming the item and the type; the item fails in the last stage), a store that breaks mid-run,
  an id with no stored form, a stored value that cannot be rebuilt. A store that cannot be read
  at all fails the call before anything runs (one read when the run is built).

Every read and write happens on the event loop — where items are fed and where they leave the
last stage — never on a worker thread, so a run's store traffic is sequential.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING

from ._claim import claim_run
from ._errors import ConfigurationError, ItemMismatchError, SerializationError
from ._fingerprint import code_fingerprint
from ._history import RunKind, RunStatus, records_history
from ._options import check_state_options
from ._pipeline_types import EMPTY, PipelineResult
from ._recording import MAX_FAILED_ITEMS, RunRecorder, error_fields
from ._serialize import JSONSerializer, stable_dumps, stable_type_name
from ._status import ChangePolicy
from ._store import StateEntry, StateStore, pipeline_namespace

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._claim import Claim
    from ._options import RunOptions
    from ._pipeline_run import PipelineRun
    from ._stage import Stage
    from ._stage_items import Item

__all__ = ["Checkpoint", "make_checkpoint", "stages_fingerprint"]

logger = logging.getLogger("flowweaver.state")


def make_checkpoint(
    pipeline: str,
    stages: Sequence[Stage],
    store: StateStore | None,
    run_id: str | None,
    on_changed: ChangePolicy | str,
) -> Checkpoint | None:
    """The checkpoint of a run with ``store``, or None without one (``run_id`` is then unused).

    Raises:
        ConfigurationError: ``store`` is not a StateStore, ``on_changed`` is not a
            ChangePolicy, or a store was given without a non-empty ``run_id``.
        StateError: The store cannot be read.
    """
    options: RunOptions = {"on_changed": on_changed}
    if store is not None:
        options["store"] = store
    store, policy = check_state_options(options)
    if store is None:
        return None
    if not isinstance(run_id, str) or not run_id:
        raise ConfigurationError(
            f"a pipeline run with a store needs a run_id (a non-empty str) to resume by, "
            f"got {run_id!r}"
        )
    return Checkpoint(store, pipeline, run_id, stages, policy)


def stages_fingerprint(stages: Sequence[Stage]) -> str:
    """Hash of what the stages do to an item: their tasks, ``skip_if`` and ``unpack_args``."""
    hasher = hashlib.blake2b(digest_size=16)
    for stage in stages:
        hasher.update(b"[stage unpack=%d" % stage.unpack_args)
        for fn in stage.tasks:
            hasher.update(b"|" + code_fingerprint(fn).encode())
        if stage.skip_if is not None:
            hasher.update(b"|skip_if:" + code_fingerprint(stage.skip_if).encode())
        hasher.update(b"]")
    return hasher.hexdigest()


class Checkpoint:
    """One pipeline run's committed results: restore items as they are fed, commit results as
    they leave the last stage. See the module docstring."""

    __slots__ = (
        "_changed",
        "_claim",
        "_code",
        "_failures",
        "_namespace",
        "_on_changed",
        "_pending",
        "_recorder",
        "_seen",
        "_serializer",
        "_store",
        "pipeline",
        "run_id",
    )

    def __init__(
        self,
        store: StateStore,
        pipeline: str,
        run_id: str,
        stages: Sequence[Stage],
        on_changed: ChangePolicy,
    ) -> None:
        self._store = store
        self._serializer = store.serializer
        self._namespace = pipeline_namespace(pipeline, run_id)
        self._on_changed = on_changed
        self._code = stages_fingerprint(stages).encode()
        #: Items fed and not yet ended: sequence id -> (store key, fingerprint).
        self._pending: dict[int, tuple[str, str]] = {}
        self._changed = 0
        #: Store keys of the items fed in this run: an id seen twice is refused.
        self._seen: set[str] = set()
        self.pipeline = pipeline
        self.run_id = run_id
        # One owner per run id (as for a workflow run), claimed before anything is read.
        self._claim: Claim | None = claim_run(
            store, self._namespace, ("pipeline", pipeline, run_id), 0.0
        )
        #: Run history: the run's record, and its failed items (the first MAX_FAILED_ITEMS).
        self._recorder = (
            RunRecorder(store, RunKind.PIPELINE, pipeline, run_id)
            if records_history(store)
            else None
        )
        self._failures: list[dict[str, object]] = []
        try:
            # One read now: a store that cannot be read fails the call before anything runs.
            store.get(self._namespace, "")
            if self._recorder is not None:
                self._recorder.start(time.time(), "Pipeline", 0)
        except BaseException:
            self.release()
            raise

    def __repr__(self) -> str:
        return f"<Checkpoint pipeline={self.pipeline!r} run_id={self.run_id!r} {self._store!r}>"

    def restore(self, item: Item) -> PipelineResult | BaseException | None:
        """An item is being fed: its restored result, the error it fails with, or None when it
        must run (its key and fingerprint are then kept for :meth:`commit`)."""
        try:
            # Never the store's own serializer, which a user may replace: keys must not change with
            # it, nor with flowweaver's releases (stable_dumps). 3 and "3" stay apart.
            key = stable_dumps(item.id)
        except SerializationError as error:
            return SerializationError(
                error.type_name,
                "an item id needs a JSON form to be a store key (use str, int, or tuples of them)",
                item_id=item.id,
            )
        if key in self._seen:
            return ConfigurationError(
                f"pipeline {self.pipeline!r}: item id {item.id!r} was fed twice in run "
                f"{self.run_id!r}; ids must be unique in a checkpointed run (the second would "
                "reuse or replace the first one's committed result)"
            )
        self._seen.add(key)
        fingerprint = self._fingerprint(item.value)
        try:
            record = self._store.get(self._namespace, key)
        except Exception as error:  # a broken store (a custom one may raise anything)
            return error
        if record is not None:
            if record.fingerprint == fingerprint:
                try:
                    value = self._serializer.loads(record.data)
                except SerializationError as error:
                    return error.for_item(item.id)
                except Exception as error:  # a custom serializer's own trouble
                    return error
                return PipelineResult(item.id, value, item.seq, item.meta or EMPTY, restored=True)
            if self._on_changed is ChangePolicy.ERROR:
                return ItemMismatchError(item.id, self.pipeline, self.run_id)
            self._changed += 1
            if self._changed == 1:
                logger.warning(
                    "pipeline %r: item %r changed (stage code or input) since run %s committed "
                    "its result; running it again (other changed items are only counted)",
                    self.pipeline, item.id, self.run_id,
                )  # fmt: skip
        self._pending[item.seq] = (key, fingerprint)
        return None

    def commit(self, item: Item) -> BaseException | None:
        """Store the result of an item leaving the last stage; the error if that failed."""
        key, fingerprint = self._pending.pop(item.seq)
        try:
            text = self._serializer.dumps(item.value)
        except SerializationError as error:
            return error.for_item(item.id)
        except Exception as error:  # a custom serializer's own trouble
            return error
        store = self._store
        try:
            store.put(self._namespace, key, StateEntry(text, store.now(), None, fingerprint))
        except Exception as error:  # a locked or broken store
            return error
        return None

    def forget(
        self, item: Item, stage: str, error: BaseException | None = None, attempts: int = 0
    ) -> None:
        """The item failed: it is not committed (it runs again on a rerun); history notes it."""
        self._pending.pop(item.seq, None)
        if self._recorder is not None and len(self._failures) < MAX_FAILED_ITEMS:
            try:
                name = stable_dumps(item.id)
            except Exception:  # an id with no JSON form: its repr names it in the history
                name = repr(item.id)
            self._failures.append(
                {"name": name, "status": "failed", "stage": stage, "attempts": attempts,
                 **error_fields(error)}
            )  # fmt: skip

    def release(self) -> None:
        """Give up the run id's claim (idempotent): another run of it may start."""
        claim, self._claim = self._claim, None
        if claim is not None:
            claim.release()

    def finish(self, run: PipelineRun) -> None:
        """The run ended: record how it went in the run history, release the run id (even if
        recording failed), say what was reused."""
        try:
            self._record_end(run)
        finally:
            self.release()
        if run.restored or self._changed:
            logger.info(
                "pipeline %r: run %s restored %d committed item result(s); %d item(s) ran "
                "again because their stage code or input changed",
                self.pipeline, self.run_id, run.restored, self._changed,
            )  # fmt: skip

    def _record_end(self, run: PipelineRun) -> None:
        if self._recorder is None:
            return
        restored = run.restored
        counts = {"completed": run.processed, "failed": run.failed, "restored": restored}
        if run.stopping and run.failed_by_type.get("ItemCancelledError"):
            counts["cancelled"] = run.failed_by_type["ItemCancelledError"]
        stages = [
            {"name": stage.name, "workers": len(stage.slots),
             "processed": sum(slot.processed for slot in stage.slots),
             "failed": run.failed_by_stage.get(stage.name, 0)}
            for stage in run.stages
        ]  # fmt: skip
        status = RunStatus.FAILED if run.failed else RunStatus.COMPLETED
        if run.stopping and not run.failed:
            status = RunStatus.CANCELLED
        first = self._failures[0] if self._failures else None
        error = None if first is None else f"{first.get('error_type')}: {first.get('error')}"
        self._recorder.finish(
            status, time.time(), counts, error,
            {"stages": stages, "failures": self._failures}, total=run.fed,
        )  # fmt: skip

    def _fingerprint(self, value: object) -> str:
        hasher = hashlib.blake2b(self._code, digest_size=16)
        try:
            serializer = self._serializer
            # The default serializer's text as 0.3.0 wrote it: its fingerprints still match.
            text = (
                stable_dumps(value)
                if type(serializer) is JSONSerializer
                else serializer.dumps(value)
            )
        except Exception:  # no stored form: the type is all we can compare
            hasher.update(b"|type:" + stable_type_name(type(value)).encode())
        else:
            hasher.update(b"|" + text.encode("utf-8", "surrogatepass"))
        return hasher.hexdigest()
