"""The release, in one place below every module that reports it (run records, telemetry)."""

__all__ = ["__version__"]

__version__ = "0.3.0"
