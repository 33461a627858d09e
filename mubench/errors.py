"""User-facing errors: one sentence naming the bad value, what is accepted, and the fix.

The CLI turns any `MubenchError` into a single stderr line and exit code 2; everything else is
a bug and keeps its traceback.
"""


class MubenchError(Exception):
    """A problem with the user's input or environment (not a bug in mubench)."""


class ConfigError(MubenchError, ValueError):
    """An invalid configuration value, scenario string, or hyper-parameter override."""


class UnknownNameError(MubenchError, KeyError):
    """A name that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(MubenchError, FileNotFoundError):
    """A dataset that is not on disk (or is corrupt) where mubench looked for it."""


class PluginError(MubenchError):
    """A method plugin that could not be loaded."""
