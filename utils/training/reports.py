"""What a run shows and leaves: its progress, its log file, its heat maps and learning curve."""
import csv
import json
import math
import os
import sys
import time

import numpy as np

from .config import LOG_COLUMNS
from .migrations import log_columns

__all__ = ["Progress", "Log", "curve_path", "training_events", "validation_curves", "plot"]


def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """A one-line progress bar on a terminal; plain lines every ``--log-every`` otherwise.

    Parameters
    ----------
    total : int
        The iteration the run trains to.
    quiet : bool
        Print nothing but what :meth:`row` is forced to (``--quiet``: nothing at all).
    stream : file, optional
        Default: standard output.
    """

    def __init__(self, total, quiet, stream=None):
        self.total = total
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.bar = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_draw = 0.0
        self._drawn = False

    def info(self, text):
        """A line of information (silenced by --quiet)."""
        if not self.quiet:
            self._clear()
            print(text, file=self.stream, flush=True)

    def update(self, iteration, loss, bits, rate, remaining_s):
        """Redraw the bar (at most ten times a second) with the window's means."""
        if not self.bar:
            return
        now = time.perf_counter()
        if now - self._last_draw < 0.1 and iteration != self.total:
            return
        self._last_draw = now
        width = 24
        filled = int(width * iteration / max(self.total, 1))
        eta = _duration(remaining_s) if np.isfinite(remaining_s) else "?"
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {iteration}/{self.total} "
                f"loss {loss:.4f} bits/seq {bits:.2f} {rate:.1f} seq/s ETA {eta}")
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def row(self, row, force_line):
        """A log row: a plain line (always without a terminal, with one when forced)."""
        if self.quiet or (self.bar and not force_line):
            return
        text = (f"iter {row['iteration']:7d}  loss {row['loss']:.4f}  "
                f"bits/seq {row['train_bits_per_seq']:8.3f}")
        if row["val_bits_per_seq"] is not None:
            text += (f"  val bits/seq {row['val_bits_per_seq']:8.3f}  "
                     f"val errors/seq {row['val_errors_per_seq']:7.3f}")
        if row.get("avg_val_bits_per_seq") is not None:
            text += f"  (average: {row['avg_val_bits_per_seq']:.3f})"
        text += f"  {row['seq_per_s']:.1f} seq/s  {_duration(row['elapsed_s'])}"
        self.info(text)

    def _clear(self):
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False

    def close(self):
        """End the bar's line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class Log:
    """Rows of :data:`~utils.training.config.LOG_COLUMNS` to a CSV or JSON-lines file, flushed
    after each row.

    Parameters
    ----------
    path : str
        ``FILE.csv`` or ``FILE.jsonl``.
    append : bool
        Append to the file a resumed run began (a CSV keeps its own columns,
        :func:`utils.training.migrations.log_columns`); else start it afresh.
    """

    def __init__(self, path, append):
        self.path = path
        self.json = path.endswith(".jsonl")
        exists = append and os.path.exists(path) and os.path.getsize(path) > 0
        self.columns = LOG_COLUMNS
        if exists and not self.json:
            with open(path, encoding="utf-8", newline="") as stream:
                self.columns = log_columns(next(csv.reader(stream), None), LOG_COLUMNS)
        self.stream = open(path, "a" if exists else "w", encoding="utf-8", newline="")
        self.writer = None if self.json else csv.writer(self.stream)
        if not self.json and not exists:
            self.writer.writerow(self.columns)

    def write(self, row):
        """Append a row (a dict; missing columns empty) and flush it."""
        if self.json:
            self.stream.write(json.dumps({column: row.get(column) for column in self.columns})
                              + "\n")
        else:
            self.writer.writerow(["" if row.get(column) is None else row[column]
                                  for column in self.columns])
        self.stream.flush()

    def close(self):
        """Close the file."""
        self.stream.close()


def curve_path(plot_path):
    """Where ``--plot FILE.png`` writes the learning curve: ``FILE-curve.png``."""
    root, extension = os.path.splitext(plot_path)
    return f"{root}-curve{extension}"


def training_events(rows):
    """Where the training changed, for the learning curve, ``[(iteration, label)]``: the
    focus penalty turned on, or the learning rate of a schedule changed (at the last row
    before the first row with the change)."""
    events, previous = [], None
    for row in rows:
        at = previous["iteration"] if previous is not None else 0
        penalty = row.get("focus_penalty")
        if penalty is not None and (previous is None or previous.get("focus_penalty") is None):
            events.append((at, f"focus penalty {penalty:g} on"))
        rate = row.get("learning_rate")
        if rate is not None and previous is not None and \
                previous.get("learning_rate") not in (None, rate):
            events.append((at, f"learning rate {rate:g}"))
        previous = row
    return events


def validation_curves(history):
    """The validation costs of a run's history rows, as the learning curve's ``others``: the
    parameters' own and, once averaging has begun, their mean's."""
    curves = {}
    for key, name in (("val_bits_per_seq", "validation"),
                      ("avg_val_bits_per_seq", "validation, mean of the parameters")):
        points = [(row["iteration"], row[key]) for row in history
                  if row.get(key) is not None and math.isfinite(row[key])]
        if points:
            curves[name] = tuple(list(part) for part in zip(*points))
    return curves


def plot(config, trainer, script, history, progress):
    """Draw the heat maps of one episode to ``--plot`` and the learning curve of ``history``
    beside it (:func:`curve_path`).

    Parameters
    ----------
    config : namespace
    trainer : Trainer
    script : utils.training.tasks.Script
        Builds the episode's task and its markers.
    history : list of dict
        The run's rows (or its checkpoint's, for a loaded model).
    progress : Progress
        Says where the figures went.
    """
    # Imported here: matplotlib is needed only by runs that draw.
    from ..visualization import Dashboard, learning_curve

    model = trainer.model
    task = script.make(config, 1, [config.seed, 3])
    dashboard = Dashboard(trainer.predict, task, model.memory_shape,
                          ntm_layer_fn=trainer.details if model.l_ntm is not None else None,
                          markers=script.markers(task) if script.markers else ())
    dashboard.save(config.plot, **config.plot_params)
    rows = [row for row in history if row.get("train_bits_per_seq") is not None]
    if rows:
        learning_curve([row["train_bits_per_seq"] for row in rows], curve_path(config.plot),
                       window=min(10, len(rows)), ylabel="bits per sequence",
                       iterations=[row["iteration"] for row in rows],
                       events=training_events(rows), label="training",
                       others=validation_curves(history))
        progress.info(f"heat maps written to {config.plot}, learning curve to "
                      f"{curve_path(config.plot)}")
    else:
        progress.info(f"heat maps written to {config.plot} (no history for a learning curve)")
