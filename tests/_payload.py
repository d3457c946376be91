"""A value that refuses to be unpickled in the process that made the test's client.

Workers rebuild it freely; if it ever travels back to the client process, unpickling raises
and leaves a mark in :data:`REFUSED`.
Kept apart from the test modules so that worker processes import nothing heavy to rebuild it.
"""

from __future__ import annotations

import os


class Payload:
    """``data`` that must stay out of process ``client_pid``."""

    def __init__(self, data: bytes, client_pid: int) -> None:
        self.data = data
        self.client_pid = client_pid

    def __reduce__(self) -> tuple[object, ...]:
        return (rebuild, (self.data, self.client_pid))


#: Sizes of the payloads that reached the client process (and were refused there).
REFUSED: list[int] = []


def rebuild(data: bytes, client_pid: int) -> Payload:
    if os.getpid() == client_pid:
        REFUSED.append(len(data))
        raise RuntimeError("the payload was rebuilt in the client process")
    return Payload(data, client_pid)
