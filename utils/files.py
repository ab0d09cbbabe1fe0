"""Writing files atomically, so that a reader never sees half of one."""
import os
import tempfile

__all__ = ["atomic_write"]


def atomic_write(path, write):
    """Write ``path`` through a temporary file in its directory, then :func:`os.replace`.

    ``path`` holds either its old contents or the complete new ones, even if the process stops
    midway (the temporary file is removed on an exception).

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
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1],
                                         dir=directory)
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
    return path
