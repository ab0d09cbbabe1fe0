"""Writing files atomically, so that a reader never sees half of one."""
import glob
import os
import tempfile

__all__ = ["atomic_write", "temporary_files_of"]


def _temporary_prefix(path):
    """The name every temporary file of ``path`` starts with: ``.NAME.tmp-``, so that those
    left by a killed process can be told apart from other files' (:func:`temporary_files_of`)."""
    return "." + os.path.basename(path) + ".tmp-"


def temporary_files_of(path):
    """The temporary files that writes of ``path`` by :func:`atomic_write` left behind.

    A write removes its temporary file when it fails or is interrupted; only a process killed
    outright (``kill -9``, a power cut) leaves one. Nothing tells whether another process is
    writing one now: remove them only when no other process can write ``path``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    list of str
        Their paths, sorted.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    return sorted(glob.glob(os.path.join(glob.escape(directory),
                                         glob.escape(_temporary_prefix(path)) + "*")))


def _sync_directory(directory):
    """Make a rename in ``directory`` durable (where the system allows opening directories)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write(path, write):
    """Write ``path`` through a temporary file in its directory, then :func:`os.replace`.

    ``path`` holds either its old contents or the complete new ones, even if the process stops
    midway: the new contents are flushed to the disk before the rename, and the rename itself
    after it. On an exception (a full disk, an interrupt) the temporary file
    (``.NAME.tmp-XXXX`` beside ``path``) is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
    write : callable
        ``write(stream)`` writes the contents to a binary stream.

    Returns
    -------
    str
        ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path), dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _sync_directory(directory)
    return path
