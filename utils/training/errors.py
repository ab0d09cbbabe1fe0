"""The errors of the training package.

Each says, in one line, what is wrong and where (the option, the file). The command line
(:mod:`utils.training.cli`) turns a :class:`ConfigError` into argparse's usage error (status
2, no traceback); the loop turns the others into a run's exit status.
"""

__all__ = ["ConfigError", "CheckpointError", "CheckpointWriteError", "CheckpointLocked",
           "TrainingStopped"]


class ConfigError(ValueError):
    """A value of the configuration that cannot work; the message starts with the option
    (``--batch-size: must be >= 1, got 0``)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or written; the message names the file."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint that could not be written (a full disk, a missing permission); the
    previous one at the path is intact unless the message says the new one was committed."""


class CheckpointLocked(RuntimeError):
    """Another process holds the lock of a checkpoint.

    Parameters
    ----------
    message : str
        Who holds it and what to do.
    holder : dict
        What the holder recorded: ``pid``, ``host``, ``started_at``, ``command``.
    """

    def __init__(self, message, holder):
        super().__init__(message)
        self.holder = holder


class TrainingStopped(RuntimeError):
    """Training stopped on a non-finite loss or gradient (the step was not applied)."""
