"""The exceptions every layer raises; a leaf module (no torch), so the CLI can catch them cheaply."""
from __future__ import annotations


class ConfigError(ValueError):
    """A config, preset or override that cannot be used; the message says which key and the fix."""


class DataError(RuntimeError):
    """Missing, truncated, corrupt or malformed dataset files; the message names the file and the fix."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded or does not fit; the message names the file and the fix."""


class RunError(RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


class NonFiniteLoss(RunError):
    pass


class Interrupted(RunError):
    pass
