"""Opt-in logging output: colored lines for people, JSON lines for log aggregators.

flowweaver logs through the ``flowweaver`` logger hierarchy and, like every library, adds no
handler of its own: importing it prints nothing. :func:`configure_logging` is the one call that
attaches output, and only to the ``flowweaver`` logger; calling it again replaces that output
instead of duplicating it.

Levels: the standard ones plus ``SUCCESS`` (25) and ``SYSTEM`` (21) for an application's own
messages (flowweaver itself logs at the standard levels); both show at ``INFO``. Their names
are registered with :mod:`logging` when :func:`configure_logging` is first called, not at
import.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, TextIO

from ._errors import ConfigurationError
from ._public import publish

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["LogLevel", "configure_logging"]


class LogLevel(IntEnum):
    """Levels for :func:`configure_logging`; usable anywhere :mod:`logging` takes a level."""

    DEBUG = logging.DEBUG
    INFO = logging.INFO
    SYSTEM = 21
    SUCCESS = 25
    WARNING = logging.WARNING
    ERROR = logging.ERROR


#: Extra record fields worth showing, in this order, when a log call provides them.
CONTEXT_FIELDS = ("workflow", "run_id", "task", "stage", "item", "worker", "attempt")

_COLORS: Mapping[int, str] = {
    LogLevel.DEBUG: "\033[2m",  # dim
    LogLevel.INFO: "\033[34m",  # blue
    LogLevel.SYSTEM: "\033[35m",  # magenta
    LogLevel.SUCCESS: "\033[32m",  # green
    LogLevel.WARNING: "\033[33m",  # yellow
    LogLevel.ERROR: "\033[31m",  # red
}
_RESET = "\033[0m"
_SHORT_NAMES = {"WARNING": "WARN", "CRITICAL": "CRIT"}


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in CONTEXT_FIELDS if hasattr(record, name)}


class TextFormatter(logging.Formatter):
    """``14:30:05  [INFO] message  task=load`` — the seed's layout, colored on request."""

    def __init__(self, colors: bool) -> None:
        super().__init__()
        self.colors = colors

    def format(self, record: logging.LogRecord) -> str:
        clock = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        name = _SHORT_NAMES.get(record.levelname, record.levelname)
        tag = f"[{name}]"
        if self.colors:
            color = _COLORS.get(record.levelno, _COLORS[LogLevel.ERROR])
            tag = f"{color}{tag}{_RESET}"
        context = "".join(f"  {k}={v}" for k, v in _context(record).items())
        text = f"{clock}  {tag} {record.getMessage()}{context}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, context fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=repr, ensure_ascii=False)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs; recognised (and replaced) on the next call."""


def _wants_color(stream: TextIO, use_colors: bool) -> bool:
    # https://no-color.org: any non-empty NO_COLOR disables color.
    if not use_colors or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(
    level: LogLevel | int | str = LogLevel.INFO,
    json_output: bool = False,
    use_colors: bool = True,
    *,
    stream: TextIO | None = None,
) -> logging.Logger:
    """Send flowweaver's log records to ``stream`` (default: standard error).

    Args:
        level: The lowest level shown (a :class:`LogLevel`, an int, or a name such as
            ``"debug"``).
        json_output: One JSON object per line instead of text.
        use_colors: Color the level tags — only when ``stream`` is a terminal and ``NO_COLOR``
            is unset.
        stream: Where lines go.

    Returns:
        The configured ``flowweaver`` logger.

    Examples:
        >>> from flowweaver import configure_logging, LogLevel
        >>> logger = configure_logging(level=LogLevel.DEBUG, json_output=True)  # doctest: +SKIP
    """
    threshold = _level(level)  # before anything changes
    for custom in (LogLevel.SYSTEM, LogLevel.SUCCESS):
        logging.addLevelName(custom, custom.name)
    logger = logging.getLogger("flowweaver")
    for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(old)
    target = stream if stream is not None else sys.stderr
    handler = _Handler(target)
    handler.setFormatter(
        JsonFormatter() if json_output else TextFormatter(_wants_color(target, use_colors))
    )
    logger.addHandler(handler)
    logger.setLevel(threshold)
    return logger


def _level(level: object) -> int:
    """A level for :func:`configure_logging`: a :class:`LogLevel`, an int, or a level's name."""
    if isinstance(level, str) and level.upper() in LogLevel.__members__:
        return LogLevel[level.upper()]
    if isinstance(level, int) and not isinstance(level, bool) and level >= 0:
        return level
    raise ConfigurationError(
        f"configure_logging: level must be a LogLevel, an int >= 0 or one of "
        f"{list(LogLevel.__members__)!r}, got {level!r}"
    )


publish(__name__)  # last: every exported class above exists
