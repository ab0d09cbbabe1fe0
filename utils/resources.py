"""What a training run needs of the machine's memory, estimated before anything is compiled."""
import os

__all__ = ["scan_memory_bytes", "available_memory_bytes", "format_bytes"]


def scan_memory_bytes(memory_shape, batch_size, steps, itemsize):
    """A lower bound of the bytes a training step holds for the NTM's memory.

    The scan over time keeps the memory of every step for the gradient, and the gradient's
    scan goes back through as many:

    .. math:: 2 \\times N \\times M \\times \\mathrm{batch} \\times \\mathrm{steps} \\times
              \\mathrm{bytes}

    (the heads' and controller's states, far smaller, are left out).

    Parameters
    ----------
    memory_shape : tuple of int
        ``(N, M)``.
    batch_size : int
    steps : int
        Time steps of the longest training sequence.
    itemsize : int
        Bytes per number (4 for float32).

    Returns
    -------
    int
    """
    N, M = memory_shape
    return 2 * int(N) * int(M) * int(batch_size) * int(steps) * int(itemsize)


def available_memory_bytes():
    """The memory the system can give a process now, in bytes, or None when unknown
    (Linux's ``MemAvailable``, else the free physical pages)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count):
    """``count`` bytes in the largest binary unit that keeps it >= 1, e.g. ``"74.5 GiB"``."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
