"""Every reading of what an earlier version wrote: checkpoints and logs.

Checkpoints carry a format version (:data:`VERSION`); a checkpoint of an earlier version is
read through the migrations of :data:`DOCUMENT_MIGRATIONS`, each taking a version to the next:

* version 1 kept the document in ``PATH.json`` beside ``PATH.npz``, each file replaced
  atomically but not together (version 2 keeps it inside the ``.npz``).

Within a version, options were added over time. A checkpoint's configuration holds the
options that existed when it was written: an option it lacks predates it, and the run that
wrote it behaved as the option's *earlier value* says (:data:`OPTIONS_ADDED` for the shared
options, :attr:`utils.training.config.TaskOption.earlier_value` for a task's):
:func:`saved_config` fills them in. Checkpoints written before the runs were recorded name
their last command only (:func:`runs_of`), and a CSV log begun by an earlier version keeps its
own columns when a resumed run appends to it (:func:`log_columns`).
"""
from collections import OrderedDict

from .errors import CheckpointError

__all__ = ["VERSION", "DOCUMENT_MIGRATIONS", "OPTIONS_ADDED", "migrate_document",
           "saved_config", "runs_of", "log_columns"]

#: The version of the checkpoints written now: 2, the document inside the ``.npz``.
VERSION = 2


def _from_version_1(arrays, document, paths):
    """Version 1 to 2: the document came from ``PATH.json``; the iteration in both files tells
    a pair torn by a write interrupted between them."""
    npz_path, json_path = paths
    if "iteration" not in arrays or int(arrays["iteration"]) != document["iteration"]:
        raise CheckpointError(f"{npz_path} and {json_path} are from different iterations; the "
                              f"checkpoint was torn by an interrupted write")
    return arrays, dict(document, version=2)


#: ``{version: migrate}``: ``migrate(arrays, document, (npz_path, json_path))`` returns the
#: arrays and document of the next version.
DOCUMENT_MIGRATIONS = {1: _from_version_1}


def migrate_document(arrays, document, paths):
    """A checkpoint's arrays and document, migrated from their version to :data:`VERSION`.

    Parameters
    ----------
    arrays : dict
        ``{name: array}`` as read.
    document : dict
        The JSON document as read, with an integer ``version`` not above :data:`VERSION`.
    paths : tuple of str
        ``(PATH.npz, PATH.json)``, for the messages.

    Returns
    -------
    arrays, document
        Of version :data:`VERSION`.

    Raises
    ------
    CheckpointError
        When a migration finds the checkpoint inconsistent (a torn version-1 pair).
    """
    while document["version"] < VERSION:
        arrays, document = DOCUMENT_MIGRATIONS[document["version"]](arrays, document, paths)
    return arrays, document


#: Options added after checkpoints were first written, with the value that the runs of the
#: checkpoints without them trained with: those always trained the memory's initial state, and
#: clipped no spikes, added no focus penalty, followed no schedule and averaged nothing.
OPTIONS_ADDED = OrderedDict([
    ("learn_memory_init", True),
    ("clip_spikes", None),
    ("focus_penalty", None),
    ("focus_penalty_after", 0),
    ("learning_rate_schedule", []),
    ("average_after", None),
])


def saved_config(document, task_options=()):
    """A checkpoint's options, with the values of the options it predates.

    Parameters
    ----------
    document : dict
        The checkpoint's JSON document (its ``config``).
    task_options : sequence of TaskOption
        The task's options; those with an ``earlier_value`` are filled in too.

    Returns
    -------
    dict
        ``{dest: value}``, a new dictionary.
    """
    saved = dict(document.get("config", {}))
    for dest, value in OPTIONS_ADDED.items():
        saved.setdefault(dest, list(value) if isinstance(value, list) else value)
    for option in task_options:
        if option.earlier_value is not None:
            saved.setdefault(option.dest, option.earlier_value)
    return saved


def runs_of(document):
    """The runs recorded in a checkpoint's document, oldest first (copies).

    Checkpoints written before runs were recorded name only their last command line, counted
    as one run ending at the checkpoint's iteration.
    """
    if "runs" in document:
        return [dict(run) for run in document["runs"]]
    if "command_line" in document:
        return [{"command_line": document["command_line"],
                 "last_iteration": document["iteration"]}]
    return []


def log_columns(header, columns):
    """The columns a resumed run appends to a CSV log in: the file's own ``header`` when an
    earlier version wrote fewer of today's ``columns``, else ``columns``."""
    if header and set(header) <= set(columns):
        return tuple(header)
    return tuple(columns)
