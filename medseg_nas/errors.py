"""Errors the user can act on.

Anything raised as `MedsegError` is printed by the CLI as one line (no traceback) and exits
non-zero; the message must name the file or key at fault and what is wrong with it.
"""


class MedsegError(Exception):
    """A problem with the user's input (file, config, dataset) rather than a bug."""


class ConfigError(MedsegError):
    """A configuration file or override is invalid."""


class DataError(MedsegError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class ModelFileError(MedsegError):
    """A model file (checkpoint, TorchScript export) is unreadable or carries metadata we refuse."""


class SearchError(MedsegError):
    """The search cannot start or had to stop (message says why and what to do)."""


class StoreDamagedError(MedsegError):
    """A run directory's trials.sqlite cannot be read (left untouched; the message says what can be recovered)."""
