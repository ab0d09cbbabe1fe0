"""Checkpoints: one file committed as a whole, the formats of earlier versions read back, what
a run's checkpoint holds, and the lock of the run that writes them.

A checkpoint is one NumPy ``.npz`` file, ``PATH.npz``: its arrays and, in the entry
:data:`DOCUMENT`, its JSON document (options, iteration, random state, history). It is written
to a temporary file, flushed to the disk and renamed over the previous one
(:func:`utils.files.atomic_write`), so that ``PATH.npz`` is always a complete checkpoint, the
previous one until the rename commits the next. ``PATH.json`` beside it is a readable copy of
the document, written after the commit and never read back: a process killed between the two
leaves it one checkpoint behind, and the next run that writes ``PATH`` rewrites it.

The document carries a format version; :func:`read_checkpoint` reads a checkpoint of any
earlier version through :mod:`utils.training.migrations` (version 1 was two files, ``PATH.npz``
and ``PATH.json``, read here and checked there).

A run's checkpoint holds the parameters (``params/<name>``), the optimizer state
(``optimizer/<name>``), the iteration, and with ``--keep-best`` and ``--average-after`` the
best parameters (``best/<name>``) and the running sums of the average (``average/<name>``)
(:func:`save_checkpoint`, :func:`load_checkpoint`).

A run that writes ``PATH`` holds its :class:`CheckpointLock` (``PATH.lock``) from before it
compiles to its end: a second run on the same path fails at once, naming the first. The lock is
the operating system's (:func:`fcntl.flock`), which ends with its process, however the process
ends; the file left by a killed process is taken over with a note.
"""
import errno
import io
import json
import os
import socket
import tempfile
import time
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from ..files import atomic_write, temporary_files_of
from .errors import CheckpointError, CheckpointLocked, CheckpointWriteError
from .migrations import VERSION, migrate_document

try:
    import fcntl
except ImportError:  # not on Windows: the lock then relies on the process ids it records
    fcntl = None

__all__ = ["FORMAT", "DOCUMENT", "CheckpointLock", "checkpoint_paths", "lock_path",
           "best_checkpoint_path", "average_checkpoint_path", "write_checkpoint",
           "read_checkpoint", "copy_checkpoint", "save_checkpoint", "load_checkpoint",
           "load_best_parameters", "load_average_sums", "recover", "check_writable"]

#: The ``format`` of every checkpoint document.
FORMAT = "ntm-checkpoint"
#: The ``.npz`` entry that holds the document (UTF-8 JSON as bytes).
DOCUMENT = "checkpoint.json"


def checkpoint_paths(path):
    """The files of a checkpoint: ``(PATH.npz, PATH.json)`` for ``path`` = ``PATH.npz``."""
    base = path[:-4] if path.endswith(".npz") else path
    return base + ".npz", base + ".json"


def lock_path(path):
    """The lock of the checkpoint ``PATH.npz``: ``PATH.lock``."""
    return checkpoint_paths(path)[0][:-4] + ".lock"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _non_finite(arrays):
    return [name for name, value in arrays.items()
            if np.issubdtype(np.asarray(value).dtype, np.inexact)
            and not np.all(np.isfinite(value))]


def write_checkpoint(path, arrays, document):
    """Commit a checkpoint: ``PATH.npz`` holding ``arrays`` and ``document``, in one step.

    Parameters
    ----------
    path : str
        ``PATH.npz``.
    arrays : dict
        ``{name: array}``; floating-point arrays must be finite.
    document : dict
        JSON-serialisable, with ``"iteration"``; ``format`` and ``version`` are added.

    Raises
    ------
    CheckpointError
        For non-finite values (nothing is written: the previous checkpoint stays).
    CheckpointWriteError
        When the disk refuses the write; unless its message says otherwise, the previous
        checkpoint at ``path`` is intact and no temporary file is left.
    """
    npz_path, json_path = checkpoint_paths(path)
    bad = _non_finite(arrays)
    if bad:
        raise CheckpointError(f"{npz_path} not written: the values of {', '.join(bad[:4])}"
                              f"{' and others' if len(bad) > 4 else ''} are not finite")
    document = dict(document, format=FORMAT, version=VERSION)
    text = (json.dumps(document, indent=1, allow_nan=False) + "\n").encode()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{DOCUMENT: np.frombuffer(text, dtype=np.uint8)})
    try:
        atomic_write(npz_path, lambda stream: stream.write(buffer.getbuffer()))
    except OSError as error:
        raise CheckpointWriteError(f"cannot write {npz_path}: {_reason(error)}") from None
    _write_copy(npz_path, json_path, text, document["iteration"])


def _write_copy(npz_path, json_path, text, iteration):
    """Write the readable copy of a committed checkpoint's document."""
    try:
        atomic_write(json_path, lambda stream: stream.write(text))
    except OSError as error:
        # A copy left one checkpoint behind would mislead whoever reads it: none is better.
        try:
            os.remove(json_path)
        except OSError:
            pass
        raise CheckpointWriteError(
            f"cannot write {json_path}: {_reason(error)}; the checkpoint {npz_path} "
            f"(iteration {iteration}) is complete, its readable copy {json_path} is "
            f"removed") from None


def _reason(error):
    return getattr(error, "strerror", None) or str(error)


def copy_checkpoint(source, target):
    """Copy the checkpoint ``source`` to ``target`` (committed at once, with its copy)."""
    arrays, document = read_checkpoint(source)
    write_checkpoint(target, arrays, {key: value for key, value in document.items()
                                      if key not in ("format", "version")})


# --------------------------------------------------------------------------------------------
# Reading and migrations
# --------------------------------------------------------------------------------------------

# The first bytes of a zip archive's local file header, as of every .npz file.
_ZIP_MAGIC = b"PK\x03\x04"
# What NumPy and zipfile raise for a file that is not a complete .npz.
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _read_arrays(npz_path, names=None):
    """The arrays of a ``.npz`` file (those of ``names`` that it holds, if given)."""
    if not os.path.isfile(npz_path):
        raise CheckpointError(f"{npz_path}: no such checkpoint file")
    try:
        with open(npz_path, "rb") as stream:
            start = stream.read(len(_ZIP_MAGIC))
    except OSError as error:
        raise CheckpointError(f"{npz_path}: cannot be read ({_reason(error)})") from None
    if start != _ZIP_MAGIC:
        raise CheckpointError(f"{npz_path}: not a .npz checkpoint (a .npz file is a zip "
                              f"archive; this one does not start as one)")
    try:
        data = np.load(npz_path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a .npy file's array
            raise ValueError("one array, not an archive of arrays")
        with data:
            return {name: data[name] for name in data.files if names is None or name in names}
    except _UNREADABLE as error:
        raise CheckpointError(f"{npz_path}: not a readable .npz checkpoint (truncated, damaged "
                              f"or another kind of file: {_reason(error)})") from None


def _parse_document(text, where):
    try:
        document = json.loads(text)
    except ValueError as error:
        raise CheckpointError(f"{where}: not a checkpoint document (invalid JSON: "
                              f"{error})") from None
    if not isinstance(document, dict):
        raise CheckpointError(f"{where}: not a checkpoint document (expected a JSON object, "
                              f"found {type(document).__name__})")
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a checkpoint of these examples (format "
                              f"{document.get('format')!r}, expected {FORMAT!r})")
    if not isinstance(document.get("version"), int) or \
            not isinstance(document.get("iteration"), int):
        raise CheckpointError(f"{where}: not a checkpoint document (no integer version and "
                              f"iteration)")
    if document["version"] > VERSION:
        raise CheckpointError(f"{where}: written by a later version of these examples "
                              f"(checkpoint version {document['version']}, this one reads up "
                              f"to {VERSION})")
    return document


def read_checkpoint(path):
    """Read a checkpoint of any version, migrated to the current one.

    Parameters
    ----------
    path : str
        ``PATH.npz`` (a version-1 checkpoint's ``PATH.json`` is read beside it).

    Returns
    -------
    arrays : dict
        ``{name: array}`` (without the document's entry).
    document : dict
        The JSON document, of the current version
        (:data:`utils.training.migrations.VERSION`).

    Raises
    ------
    CheckpointError
        A one-line message naming the file: missing, truncated, not a checkpoint, a torn
        version-1 pair, or a version this code does not know.
    """
    paths = npz_path, json_path = checkpoint_paths(path)
    arrays = _read_arrays(npz_path)
    if DOCUMENT in arrays:
        text = arrays.pop(DOCUMENT).tobytes()
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{npz_path}: its document is not UTF-8 text") from None
        document = _parse_document(text, f"{npz_path} ({DOCUMENT})")
    else:  # version 1: the document is the file beside
        if not os.path.isfile(json_path):
            raise CheckpointError(f"{npz_path}: holds no checkpoint document, and there is no "
                                  f"{json_path} beside it")
        try:
            with open(json_path, "rb") as stream:
                text = stream.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{json_path}: cannot be read ({error})") from None
        document = _parse_document(text, json_path)
        if document["version"] >= 2:
            raise CheckpointError(f"{npz_path}: holds no checkpoint document, though "
                                  f"{json_path} says version {document['version']}")
    return migrate_document(arrays, document, paths)


# --------------------------------------------------------------------------------------------
# What a run's checkpoint holds
# --------------------------------------------------------------------------------------------

def best_checkpoint_path(path):
    """Where ``--keep-best`` with ``--save PATH.npz`` writes the best parameters:
    ``PATH-best.npz``."""
    return checkpoint_paths(path)[0][:-4] + "-best.npz"


def average_checkpoint_path(path):
    """Where ``--average-after`` with ``--save PATH.npz`` writes the averaged parameters:
    ``PATH-average.npz``."""
    return checkpoint_paths(path)[0][:-4] + "-average.npz"


def save_checkpoint(path, trainer, info, best_params=None, average_sums=None):
    """Commit a run's checkpoint, ``PATH.npz``, in one step (and its readable copy
    ``PATH.json``), with :func:`write_checkpoint`.

    Parameters
    ----------
    path : str
        ``PATH.npz``.
    trainer : Trainer
        Its parameters go under ``params/<name>`` and its optimizer state under
        ``optimizer/<name>`` in the ``.npz``, with the iteration under ``iteration``.
    info : dict
        JSON-serialisable; must hold ``"iteration"``. The run stores the configuration, the
        training task's random state, the history of logged metrics, the wall time, the
        command line and, under ``"runs"``, every command that trained the parameters (those
        of the checkpoints it resumed or loaded first) with its mode and iterations.
    best_params : dict, optional
        ``{name: array}`` of the best validation's parameters (``--keep-best``), stored under
        ``best/<name>``; read back with :func:`load_best_parameters`.
    average_sums : dict, optional
        ``{name: array}`` of the running sums of ``--average-after`` (float64), stored under
        ``average/<name>``; read back with :func:`load_average_sums`.

    Raises
    ------
    CheckpointError
        For non-finite values, or (:class:`CheckpointWriteError`) a write the disk refused;
        the previous checkpoint at ``path`` is then kept.
    """
    arrays = OrderedDict()
    for prefix, values in (("params", trainer.parameter_values()),
                           ("optimizer", trainer.optimizer_values()),
                           ("best", best_params or {}), ("average", average_sums or {})):
        for name, value in values.items():
            arrays[f"{prefix}/{name}"] = value
    arrays["iteration"] = np.asarray(info["iteration"])
    write_checkpoint(path, arrays, info)


def _with_prefix(arrays, prefix):
    return {name[len(prefix):]: value for name, value in arrays.items()
            if name.startswith(prefix)}


def load_checkpoint(path):
    """Read a run's checkpoint, of this version or an earlier one.

    Parameters
    ----------
    path : str
        ``PATH.npz``.

    Returns
    -------
    params : dict
        ``{name: array}`` of the parameters.
    optimizer : dict
        ``{name: array}`` of the optimizer state.
    info : dict
        The JSON document.

    Raises
    ------
    CheckpointError
        (a ValueError) If the file is missing, damaged or not a checkpoint, with a one-line
        message naming it.
    """
    arrays, info = read_checkpoint(path)
    params = _with_prefix(arrays, "params/")
    if not params:
        raise CheckpointError(f"{checkpoint_paths(path)[0]}: holds no parameters")
    return params, _with_prefix(arrays, "optimizer/"), info


def load_best_parameters(path):
    """The ``--keep-best`` parameters stored in a checkpoint: ``{name: array}``, maybe empty."""
    with np.load(checkpoint_paths(path)[0]) as data:
        return _with_prefix({name: data[name] for name in data.files
                             if name.startswith("best/")}, "best/")


def load_average_sums(path):
    """The ``--average-after`` running sums stored in a checkpoint: ``{name: array}``, maybe
    empty."""
    with np.load(checkpoint_paths(path)[0]) as data:
        return _with_prefix({name: data[name] for name in data.files
                             if name.startswith("average/")}, "average/")


# --------------------------------------------------------------------------------------------
# Before a run writes: the directory, the lock, what an interrupted write left
# --------------------------------------------------------------------------------------------

def check_writable(directory):
    """Raise :class:`OSError` unless a file can be created (and removed) in ``directory``."""
    handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
    os.close(handle)
    os.remove(probe)


def recover(paths):
    """Clean up after the interrupted writes of the checkpoints ``paths`` (their lock held).

    Removes the temporary files that killed writes left (:func:`utils.files.temporary_files_of`)
    and rewrites a readable copy ``PATH.json`` that is not its checkpoint's document (the
    process was killed between the two writes).

    Parameters
    ----------
    paths : sequence of str
        ``PATH.npz`` of each checkpoint (e.g. a run's, its best and its average).

    Returns
    -------
    list of str
        One note for each thing done.
    """
    notes = []
    for path in paths:
        npz_path, json_path = checkpoint_paths(path)
        for name in (npz_path, json_path):
            for temporary in temporary_files_of(name):
                try:
                    os.remove(temporary)
                except OSError:
                    continue
                notes.append(f"removed {temporary}, left by a write of {name} that was "
                             f"interrupted")
        if not os.path.isfile(npz_path):
            continue
        try:
            arrays = _read_arrays(npz_path, names=(DOCUMENT,))
        except CheckpointError:
            continue  # reported by whoever reads it
        if DOCUMENT not in arrays:
            continue  # version 1: the .json is the document, not a copy
        text = arrays[DOCUMENT].tobytes()
        try:
            with open(json_path, "rb") as stream:
                if stream.read() == text:
                    continue
        except OSError:
            pass
        iteration = json.loads(text.decode("utf-8")).get("iteration")
        _write_copy(npz_path, json_path, text, iteration)
        notes.append(f"rewrote {json_path} from {npz_path} (iteration {iteration}): the process "
                     f"that wrote the checkpoint stopped before its readable copy")
    return notes


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


class CheckpointLock:
    """The lock a run holds on its checkpoint, ``PATH.lock``.

    The file records the holder (``pid``, ``host``, ``started_at``, ``command``). On systems
    with :func:`fcntl.flock` the lock is the operating system's, released when the process
    ends however it ends; elsewhere a recorded process that no longer runs counts as gone.

    Parameters
    ----------
    path : str
        The checkpoint, ``PATH.npz``.
    command : str, optional
        The command line to record.

    Attributes
    ----------
    notes : list of str
        After :meth:`acquire`: a lock of a process that no longer runs, taken over.
    """

    def __init__(self, path, command=""):
        self.path = lock_path(path)
        self.command = command
        self.notes = []
        self._handle = None

    def _record(self):
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "command": self.command}) + "\n"

    @staticmethod
    def _read(handle):
        os.lseek(handle, 0, os.SEEK_SET)
        data = b""
        while True:
            chunk = os.read(handle, 65536)
            if not chunk:
                break
            data += chunk
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def _locked(self, holder):
        pid = holder.get("pid", "unknown")
        where = f" on {holder['host']}" if holder.get("host") not in (None,
                                                                        socket.gethostname()) \
            else ""
        since = f", started {holder['started_at']}" if holder.get("started_at") else ""
        command = f": {holder['command']}" if holder.get("command") else ""
        return CheckpointLocked(f"another run (pid {pid}{where}{since}{command}) is writing this "
                                f"checkpoint; wait for it to end or stop it (its lock: "
                                f"{self.path})", holder)

    def acquire(self):
        """Take the lock.

        Raises
        ------
        CheckpointLocked
            Another live process holds it.
        OSError
            The lock file cannot be created (e.g. no permission to write in the directory).
        """
        if fcntl is None:
            return self._acquire_by_pid()
        while True:
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = self._read(handle)
                os.close(handle)
                if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise self._locked(holder) from None
                raise
            # The holder before us may have removed the file between our open and our lock:
            # then ours is a lock of a file nobody else sees, and we try again.
            try:
                current = os.stat(self.path).st_ino == os.fstat(handle).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(handle)
        self._take_over(handle)
        return self

    def _acquire_by_pid(self):
        while True:
            try:
                handle = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                with open(self.path, "rb") as stream:
                    try:
                        holder = json.loads(stream.read().decode("utf-8"))
                    except ValueError:
                        holder = {}
                pid = holder.get("pid") if isinstance(holder, dict) else None
                if isinstance(pid, int) and _process_exists(pid):
                    raise self._locked(holder) from None
                os.remove(self.path)
                self.notes.append(self._stale_note(holder))
        self._handle = handle
        os.write(handle, self._record().encode())
        return self

    def _stale_note(self, holder):
        return (f"took over the lock {self.path} of process {holder.get('pid', 'unknown')}, "
                f"which no longer runs")

    def _take_over(self, handle):
        holder = self._read(handle)
        if holder and holder.get("pid") != os.getpid():
            self.notes.append(self._stale_note(holder))
        os.ftruncate(handle, 0)
        os.lseek(handle, 0, os.SEEK_SET)
        os.write(handle, self._record().encode())
        self._handle = handle

    def release(self):
        """Remove the lock file and let the lock go (nothing when not held)."""
        if self._handle is None:
            return
        try:
            os.remove(self.path)  # while still held: no one can have taken it meanwhile
        except OSError:
            pass
        os.close(self._handle)
        self._handle = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
