"""Stopping a run on Ctrl-C, SIGTERM or SIGHUP at a point where its state is whole.

A batch scheduler, ``timeout`` or a container's stop sends SIGTERM, a closed terminal SIGHUP;
both are treated as Ctrl-C (SIGINT). Inside :meth:`InterruptGuard.critical` sections (a training
step and the bookkeeping after it, a checkpoint's write) the first signal is only noted, and
raised as :class:`Interrupted` when the section ends: the run then stops between iterations,
its parameters, optimizer state and counters in agreement, and can save them. A second signal
is raised at once wherever the run is, also inside a section: it abandons a save in progress,
whose previous checkpoint stays whole (:mod:`utils.training.checkpoints`).
"""
import os
import signal
import threading
from contextlib import contextmanager

__all__ = ["Interrupted", "InterruptGuard", "HANDLED_SIGNALS"]

#: The signals handled, where the platform has them.
HANDLED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                        if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal.

    Attributes
    ----------
    signum : int
    again : bool
        Whether it was a second signal (raised at once, possibly inside a critical section).
    """

    def __init__(self, signum, again=False):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.again = again

    @property
    def name(self):
        """``"SIGINT"``, ``"SIGTERM"`` or ``"SIGHUP"``."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self):
        """The shell's status of a process ended by the signal, ``128 + signum``."""
        return 128 + self.signum


class InterruptGuard:
    """Handle SIGINT, SIGTERM and SIGHUP while inside (a context manager).

    The handlers are installed only in the main thread (the only one Python delivers signals
    to), and not for a signal that is ignored (``nohup`` ignores SIGHUP); the previous ones
    are restored on exit.

    Parameters
    ----------
    announce : callable, optional
        ``announce(text)`` is told when a first signal is deferred (default: a line on
        standard error).
    """

    def __init__(self, announce=None):
        self.announce = announce or self._to_stderr
        self.received = 0
        self.pending = None
        self._depth = 0
        self._previous = {}

    @staticmethod
    def _to_stderr(text):
        # os.write: a print() here could re-enter a print the signal interrupted.
        os.write(2, (text + "\n").encode())

    def _handle(self, signum, frame):
        self.received += 1
        if self.received == 1 and self._depth > 0:
            self.pending = signum
            self.announce(f"{signal.Signals(signum).name} received: stopping after the "
                          f"iteration in progress (send it again to stop at once, without "
                          f"saving)")
            return
        raise Interrupted(signum, again=self.received > 1)

    def raise_pending(self):
        """Raise the deferred signal, if any, unless inside a critical section."""
        if self._depth == 0 and self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)

    @contextmanager
    def critical(self):
        """A section a first signal does not interrupt; it is raised when the section ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        self.raise_pending()

    def between_iterations(self, iterable):
        """Iterate over ``iterable``, each item's loop body a critical section: a first signal
        is raised when the loop asks for the next item (or the end), not inside a body.

        A loop left by ``break``, ``return`` or an exception keeps a signal it deferred
        pending, for the next :meth:`critical` section's end or :meth:`raise_pending`.
        """
        for item in iterable:
            self._depth += 1
            try:
                yield item
            finally:
                self._depth -= 1
            self.raise_pending()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED_SIGNALS:
                previous = signal.getsignal(signum)
                if previous is signal.SIG_IGN:
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
