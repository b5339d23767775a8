"""Errors the toolkit raises on bad input. Each message says what went wrong and what to do.

Command-line entry points catch :class:`ToolkitError` and print its message instead of a traceback.
"""


class ToolkitError(Exception):
    """Base class: a user-facing error with an actionable message."""


class ConfigError(ToolkitError, ValueError):
    """A malformed configuration file or argument."""


class UnknownModelError(ToolkitError, KeyError):
    """A model name that is neither in the registry, a hub id nor a local directory."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ModelLoadError(ToolkitError, RuntimeError):
    """Weights that cannot be found, verified or loaded."""
