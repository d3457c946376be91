"""The record of a mapped task's elements in one run: what each element did.

Only the engine writes here (from the thread that drives the run); everyone else reads, through
``run.elements(name)``. One byte per element keeps a million-element stream's record at a
megabyte; results are kept by the engine (or not: ``keep_results=False``), failures here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._status import TaskStatus

if TYPE_CHECKING:
    from ._errors import ElementFailedError

__all__ = ["CODE", "ElementRecord", "element_name"]

#: Status <-> the byte that stores it (PENDING is 0: a fresh bytearray is all pending).
_STATUSES = tuple(TaskStatus)
_CODE = {status: code for code, status in enumerate(_STATUSES)}
#: The byte that stores each status (for the engine's hot path).
CODE = _CODE


def element_name(task_name: str, index: int) -> str:
    """What observers see as an element's name: ``square[3]``."""
    return f"{task_name}[{index}]"


class ElementRecord:
    """What the elements of one mapped task did in one run.

    Examples:
        >>> from flowweaver import Task, Workflow
        >>> wf = Workflow("demo")
        >>> wf.add_task(Task(name="numbers", fn=lambda: [1, 2, 0]))
        >>> wf.add_task(Task(name="invert", fn=lambda n: 1 / n, map_over="numbers",
        ...                  allow_failed_elements=True), depends_on=["numbers"])
        >>> run = wf.execute()
        >>> run.result("invert")
        [1.0, 0.5, None]
        >>> record = run.elements("invert")
        >>> record.total, record.count("completed"), [f.index for f in record.failures]
        (3, 2, [2])

    Attributes:
        task_name: The mapped task.
        total: How many elements there are; None until the task knows (a stream it is still
            reading).
        attempts: Attempts of all elements together.
        failures: Every element that failed for good, in the order they failed; each an
            :class:`~flowweaver.ElementFailedError` with ``index``, ``attempts`` and
            ``__cause__``.
    """

    __slots__ = ("_counts", "_statuses", "attempts", "failures", "task_name", "total")

    def __init__(self, task_name: str) -> None:
        self.task_name = task_name
        self.total: int | None = None
        self.attempts = 0
        self.failures: list[ElementFailedError] = []
        self._statuses = bytearray()
        self._counts = [0] * len(_STATUSES)

    def __repr__(self) -> str:
        seen = ", ".join(
            f"{self._counts[c]} {s.value}" for c, s in enumerate(_STATUSES) if self._counts[c]
        )
        return f"<ElementRecord {self.task_name!r} total={self.total!r}: {seen or 'none seen'}>"

    def __len__(self) -> int:
        """Elements seen so far (every one of them once :attr:`total` is known)."""
        return len(self._statuses)

    def status(self, index: int) -> TaskStatus:
        """Element ``index``'s status (``pending`` for one not seen yet).

        Raises:
            IndexError: ``index`` is negative.
        """
        if index < 0:
            raise IndexError(f"element index must be >= 0, got {index!r}")
        statuses = self._statuses
        return _STATUSES[statuses[index]] if index < len(statuses) else TaskStatus.PENDING

    def count(self, status: TaskStatus | str) -> int:
        """How many elements are in ``status`` now."""
        return self._counts[_CODE[TaskStatus(status)]]

    @property
    def done(self) -> int:
        """Elements that have ended, whatever their outcome."""
        counts = self._counts
        return len(self._statuses) - counts[0] - counts[1] - counts[2]

    # -- written by the engine ---------------------------------------------------------------

    def _add(self) -> None:
        """The next element (index ``len(self)``) is seen, pending."""
        self._statuses.append(0)
        self._counts[0] += 1

    def _move(self, index: int, code: int) -> None:
        """Seen element ``index`` moves to the status of ``code`` (see ``CODE``)."""
        statuses, counts = self._statuses, self._counts
        counts[statuses[index]] -= 1
        statuses[index] = code
        counts[code] += 1

    def _set(self, index: int, status: TaskStatus) -> None:
        statuses = self._statuses
        if index >= len(statuses):
            grow = index + 1 - len(statuses)
            statuses.extend(bytes(grow))
            self._counts[0] += grow
        counts = self._counts
        counts[statuses[index]] -= 1
        code = _CODE[status]
        statuses[index] = code
        counts[code] += 1
