"""A run's state: what the training loop changes and checkpoints, with the parameters the run
ends with (``--keep-best``'s best validation, ``--average-after``'s mean).

``--keep-best`` remembers the parameters of the validation with the lowest cost among those of
the run's last objective, and with ``--save`` writes them to ``PATH-best.npz`` at each new best.
``--average-after ITERATIONS`` sums the parameters after each iteration past ``ITERATIONS``
(in float64) and ends with their mean (Polyak averaging), written to ``PATH-average.npz``; the
regular checkpoint keeps the sums, so that a resumed run goes on averaging exactly.
"""
import os
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..interrupts import InterruptGuard
from .building import task_description
from .checkpoints import (average_checkpoint_path, best_checkpoint_path, checkpoint_paths,
                          copy_checkpoint, load_average_sums, load_best_parameters,
                          load_checkpoint, save_checkpoint)
from .config import config_document, last_focus_penalty
from .evaluation import evaluate
from .trainer import Trainer

__all__ = ["BEST_FIELDS", "RunState", "committed_note", "save", "checkpoint", "keep_if_best",
           "resumed_best", "restore_best", "add_to_average", "averaged_parameters",
           "average_scores", "resumed_average", "restore_average"]

#: What a checkpoint records of the best validation.
BEST_FIELDS = ("iteration", "val_bits_per_seq", "val_errors_per_seq")


@dataclass
class RunState:
    """What the training loop changes and checkpoints.

    Attributes
    ----------
    config : namespace
        The run's configuration.
    trainer : Trainer
    task : utils.generators.Task
        The training task (its generator's state is checkpointed).
    history : list of dict
        The log rows so far (a resumed run's begin with its checkpoint's).
    wall_time : float
        Seconds spent training, over every run of the checkpoint.
    iteration : int
        The last iteration completed.
    task_state : dict
        The training task's generator after that iteration's batch.
    command_line : str
    runs : list of dict
        Every command that trained the parameters, this one last.
    """

    config: Any
    trainer: Trainer
    task: Any
    history: list
    wall_time: float
    iteration: int
    task_state: dict
    command_line: str
    runs: list
    # With --keep-best: the best validation so far, its parameters, and the checkpoint that
    # holds them with their optimizer state (None without --save).
    best: Optional[dict] = None
    # With --average-after, once it starts: the float64 sums of the parameters after each
    # iteration past it, ``{"sums": {name: array}, "count": int}``.
    average: Optional[dict] = None
    # Defers a first Ctrl-C, SIGTERM or SIGHUP to the end of an iteration or a save.
    guard: InterruptGuard = field(default_factory=InterruptGuard)
    # The iteration of the last checkpoint committed to --save by this run (or resumed from).
    committed: Optional[int] = None


def committed_note(state):
    """Where the run's last committed checkpoint is, for a message (or why there is none)."""
    if state.committed is None:
        return "; no checkpoint written" if state.config.save else ""
    return f"; the checkpoint {checkpoint_paths(state.config.save)[0]} holds iteration " \
           f"{state.committed}"


def checkpoint(state):
    """Checkpoint the run to --save, and its averaged parameters beside it (PATH-average.npz)
    once --average-after has started."""
    save(state)
    if state.average is not None:
        with averaged_parameters(state):
            save(state, average_checkpoint_path(state.config.save), averaged=True)


def save(state, path=None, averaged=False):
    """Checkpoint the run to ``path`` (default: ``--save``); ``averaged``: the trainer holds
    the ``--average-after`` mean, written without the running sums."""
    info = {
        "iteration": state.iteration,
        "config": config_document(state.config),
        # The task's generator as it was after the last kept iteration's batch was drawn.
        "task_state": state.task_state,
        "task": task_description(state.task),
        # Initial parameters come from numpy.random.RandomState(seed), used only when building.
        "init_rng": {"generator": "numpy.random.RandomState", "seed": state.config.seed},
        "history": state.history,
        "wall_time_s": state.wall_time,
        "command_line": state.command_line,
        # Every command that trained these parameters, this one last, with the iterations
        # each ran (a --load starts again from iteration 0).
        "runs": state.runs[:-1] + [dict(state.runs[-1], last_iteration=state.iteration)],
        "num_params": state.trainer.model.num_params,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    best = sums = None
    if state.best is not None:
        # The regular checkpoint carries the best parameters too: a --resume needs no other file.
        info["best"] = {name: state.best[name] for name in BEST_FIELDS}
        best = state.best["params"]
    if state.average is not None:
        record = {"after": state.config.average_after,
                  "first_iteration": state.average["first_iteration"],
                  "count": state.average["count"]}
        if averaged:  # parameters to use (--load), with the last iteration's optimizer state
            info["averaged"] = dict(record, last_iteration=state.iteration)
        else:  # the sums, for a --resume that goes on averaging exactly
            info["average"] = record
            sums = state.average["sums"]
    save_checkpoint(path or state.config.save, state.trainer, info, best_params=best,
                    average_sums=sums)
    if path is None:
        state.committed = state.iteration


def keep_if_best(state, row):
    """After a validation: remember the parameters if its cost is the lowest so far.

    The comparison is strict, so of equal costs the earliest is kept; a non-finite cost is
    never kept. With --save, the parameters and optimizer state go to ``PATH-best.npz`` at
    once, a checkpoint like any other (loadable, resumable).
    """
    cost = row["val_bits_per_seq"]
    if not np.isfinite(cost) or (state.best is not None
                                 and not cost < state.best["val_bits_per_seq"]):
        return
    state.best = {name: row[name] for name in BEST_FIELDS}
    state.best["params"] = state.trainer.parameter_values()
    state.best["path"] = None
    if state.config.save:  # before the regular checkpoint, which then records this one
        state.best["path"] = best_checkpoint_path(state.config.save)
        save(state, state.best["path"])


def resumed_best(config, info, progress):
    """The best validation recorded by the resumed checkpoint, with its parameters.

    When this run saves elsewhere, the best checkpoint is copied beside the new ``--save`` so
    that the two stay together. A best trained without the focus penalty, when this run ends
    with it (or the other way round, or with another weight), is dropped: it was the best of
    another objective.
    """
    record = info.get("best")
    params = load_best_parameters(config.resume) if record is not None else {}
    if not params:
        return None
    rows = [row for row in info.get("history", []) if row["iteration"] == record["iteration"]]
    trained_with = rows[-1].get("focus_penalty") if rows else None
    last_objective = last_focus_penalty(config)
    if trained_with != last_objective:
        def objective(weight):
            return "without the focus penalty" if weight is None else \
                f"with the focus penalty at {weight:g}"
        progress.info(f"--keep-best: the checkpoint's best (iteration {record['iteration']}) "
                      f"was trained {objective(trained_with)}, this run ends "
                      f"{objective(last_objective)}: keeping the best of its validations")
        return None
    best = {name: record[name] for name in BEST_FIELDS}
    best.update(params=params, path=None)
    source = best_checkpoint_path(config.resume)
    target = best_checkpoint_path(config.save)
    try:
        written = load_checkpoint(source)[2].get("iteration") == record["iteration"]
    except ValueError:
        written = False
    if written:
        best["path"] = target
        if os.path.abspath(target) != os.path.abspath(source):
            copy_checkpoint(source, target)
    return best


def restore_best(state, progress):
    """Give the trainer the best validation's parameters; return that validation's figures."""
    best = state.best
    state.trainer.set_parameter_values(best["params"])
    where = f", saved in {best['path']}" if best["path"] else ""
    progress.info(f"--keep-best: ending with the parameters of iteration {best['iteration']} "
                  f"(validation {best['val_bits_per_seq']:.4g} bits per sequence){where}")
    return {name: best[name] for name in BEST_FIELDS}


def add_to_average(state):
    """After an iteration past --average-after: add the parameters to the running sums."""
    params = state.trainer.all_params
    if state.average is None:
        state.average = {"first_iteration": state.iteration, "count": 0, "sums": OrderedDict(
            (param.name, np.zeros(param.get_value(borrow=True).shape, np.float64))
            for param in params)}
    sums = state.average["sums"]
    for param in params:
        sums[param.name] += param.get_value(borrow=True)
    state.average["count"] += 1


def _average_parameters(state):
    """The mean of the summed parameters, ``{name: array}`` in each parameter's type."""
    count = state.average["count"]
    return OrderedDict((param.name, (state.average["sums"][param.name] / count)
                        .astype(param.dtype)) for param in state.trainer.all_params)


def resumed_average(config, info, start_iteration, progress):
    """The running sums of ``--average-after`` recorded by the resumed checkpoint, when they
    are this run's (same ITERATIONS, every iteration since counted); None otherwise."""
    after = config.average_after
    if start_iteration <= after:
        return None  # nothing to average yet
    record = info.get("average")
    sums = load_average_sums(config.resume) if record is not None else {}
    if record is not None and record["after"] == after and sums and \
            record["first_iteration"] + record["count"] - 1 == start_iteration:
        return {"first_iteration": record["first_iteration"], "count": record["count"],
                "sums": OrderedDict((name, np.asarray(value, np.float64))
                                    for name, value in sums.items())}
    progress.info(f"--average-after {after}: the checkpoint holds no average of the "
                  f"iterations after {after}; averaging from iteration {start_iteration + 1}")
    return None


@contextmanager
def averaged_parameters(state):
    """The trainer holds the averaged parameters inside, its own again after."""
    trainer = state.trainer
    last = trainer.parameter_values()
    trainer.set_parameter_values(_average_parameters(state))
    try:
        yield
    finally:
        trainer.set_parameter_values(last)


def average_scores(state, validation):
    """The averaged parameters' cost on the ``validation`` batches; the trainer keeps its own
    parameters."""
    with averaged_parameters(state):
        return evaluate(state.trainer.predict, validation, state.config.output)


def restore_average(state, progress, validation):
    """Give the trainer the averaged parameters; return which iterations they average and
    their cost on the ``validation`` batches."""
    average = state.average
    state.trainer.set_parameter_values(_average_parameters(state))
    scores = evaluate(state.trainer.predict, validation, state.config.output)
    first, count = average["first_iteration"], average["count"]
    where = (f", saved in {average_checkpoint_path(state.config.save)}"
             if state.config.save else "")
    progress.info(f"--average-after: ending with the mean of the parameters after iterations "
                  f"{first} to {state.iteration} ({count:,}; validation "
                  f"{scores['bits_per_seq']:.4g} bits per sequence){where}")
    return {"first_iteration": first, "last_iteration": state.iteration, "count": count,
            "val_bits_per_seq": scores["bits_per_seq"],
            "val_errors_per_seq": scores["errors_per_seq"]}
