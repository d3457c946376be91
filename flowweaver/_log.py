"""Loggers that import :mod:`logging` when they are first used.

``logging`` (with the ``traceback``, ``string`` and ``textwrap`` it imports) would be about a
tenth of ``import flowweaver``, and a program that never logs through us should not pay for it.
A module that logs declares ``logger = lazy_logger("flowweaver.x")`` and calls it exactly as a
``logging.Logger``: the first call fetches ``logging.getLogger("flowweaver.x")`` and hands every
call, then and later, to it. The call itself is made from the caller's frame, so records carry
the caller's module, function and line, as with a plain logger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import logging

__all__ = ["DEBUG", "lazy_logger"]

#: ``logging.DEBUG`` without importing logging (its levels are fixed numbers).
DEBUG = 10


class _LazyLogger:
    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: logging.Logger | None = None

    def __getattr__(self, attribute: str) -> object:
        # Only reached for the logger's own attributes (ours are slots), on every call.
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self._name)
        return getattr(logger, attribute)

    def __repr__(self) -> str:
        return f"<logger {self._name!r}, loaded on first use>"


def lazy_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, looked up (and ``logging`` imported) on first use."""
    return cast("logging.Logger", _LazyLogger(name))
