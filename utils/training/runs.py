"""A run of an example script's command line, once its options are parsed: the checks that need
the machine or the task, ``--save``'s lock, the checkpoint it starts from, the training loop
under the signal handlers, then the evaluation and the plots.

:func:`run_config` raises :class:`~utils.training.errors.ConfigError` for what the command line
got wrong; :func:`utils.training.cli.run` turns it into argparse's usage error.
"""
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pytensor

from ..interrupts import InterruptGuard, Interrupted
from .building import Model, parameters_for_memory_shape, task_mismatch
from .checkpoints import (CheckpointLock, average_checkpoint_path, best_checkpoint_path,
                          check_writable, checkpoint_paths, load_checkpoint, recover)
from .config import check_config, merge_checkpoint, resolve, resolve_mode
from .errors import CheckpointError, CheckpointLocked, ConfigError, TrainingStopped
from .evaluation import evaluation_table, validation_set
from .loop import EXIT_DIVERGED, EXIT_WRITE_FAILED, interrupted, train
from .migrations import runs_of
from .reports import Log, Progress, plot
from .state import (RunState, checkpoint, committed_note, restore_average, restore_best,
                    resumed_average, resumed_best)
from .tasks import Script, check_episode_params, check_memory
from .trainer import SPIKE_STATE, Trainer, model_and_trainer
from .values import format_value, option_name

__all__ = ["RunResult", "RunStart", "Script", "run_config"]


@dataclass
class RunResult:
    """What a run did (:func:`utils.training.cli.run`).

    Attributes
    ----------
    exit_code : int
        0 on success, 1 when training stopped on a non-finite step, 2 when a checkpoint could
        not be written (a full disk), 128 + the signal's number when interrupted (130 for
        Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    config : namespace
        The options in effect (after merging a checkpoint's).
    model : Model
    trainer : Trainer
    iteration : int
        Iterations completed (and kept).
    history : list of dict
        The logged rows (see :data:`~utils.training.config.LOG_COLUMNS`).
    evaluation : list of dict
        The ``--eval-lengths`` table: ``value``, ``bits_per_seq``, ``errors_per_seq``,
        ``perfect``, ``sequences`` (and ``reference_bits_per_seq`` where the task has one).
    message : str
        Why training stopped early, if it did.
    best : dict or None
        With ``--keep-best``, the validation whose parameters the run ended with:
        ``iteration``, ``val_bits_per_seq``, ``val_errors_per_seq``.
    averaged : dict or None
        With ``--average-after``, the iterations whose parameters the run ended with the mean
        of, ``first_iteration``, ``last_iteration`` and ``count``, and that mean's validation
        cost, ``val_bits_per_seq`` and ``val_errors_per_seq``.
    """

    exit_code: int
    config: Any
    model: Model
    trainer: Trainer
    iteration: int
    history: list = field(default_factory=list)
    evaluation: list = field(default_factory=list)
    message: str = ""
    best: Optional[dict] = None
    averaged: Optional[dict] = None


@dataclass
class RunStart:
    """Where a run starts, once its configuration is complete.

    Attributes
    ----------
    config : namespace
        The run's configuration (merged with its checkpoint's, resolved and checked).
    command_line : str
        The command, as recorded in checkpoints.
    mode : str
        The PyTensor mode.
    loaded : tuple or None
        ``(params, optimizer, info)`` of the ``--load`` or ``--resume`` checkpoint.
    notes : list of str
        What the run says before training (options replaced, files recovered).
    """

    config: Any
    command_line: str
    mode: str
    loaded: Optional[tuple] = None
    notes: list = field(default_factory=list)

    @property
    def checkpoint(self):
        """The checkpoint the run starts from (``--resume`` or ``--load``), or None."""
        return self.config.resume or self.config.load

    @property
    def checkpoint_option(self):
        """``"--resume"`` or ``"--load"``."""
        return "--resume" if self.config.resume else "--load"


def run_config(config, explicit, script, command_line):
    """Complete a parsed configuration, then train, evaluate, plot and checkpoint as it says.

    Parameters
    ----------
    config : namespace
        As parsed (changed in place: the checkpoint's options merged, defaults resolved).
    explicit : set of str
        The options the command line gave.
    script : Script
    command_line : str

    Returns
    -------
    RunResult

    Raises
    ------
    ConfigError
        For what the command line got wrong, before anything is compiled where it can be
        known then.
    SystemExit
        With 128 + the signal's number for Ctrl-C, SIGTERM or SIGHUP before or after training
        (in training, the run saves and returns).
    """
    start = RunStart(config, command_line, mode=None)
    if start.checkpoint:
        check_config(config)  # the checkpoint must exist before it is read
        try:
            start.loaded = load_checkpoint(start.checkpoint)
        except ValueError as error:
            raise ConfigError(f"{start.checkpoint_option}: {error}") from None
        if config.load and "memory_shape" in explicit:
            start.loaded = _loaded_for_memory_shape(config, start.loaded)
        merge_checkpoint(config, explicit, start.loaded[2], script.task_options,
                         resume=bool(config.resume))
    start.notes = resolve(config, explicit)
    start.mode = resolve_mode(config)
    # The model, its functions and the data share one float type, set for this run only.
    with pytensor.config.change_flags(floatX=config.floatX):
        return _run_checked(script, start)


def _loaded_for_memory_shape(config, loaded):
    """A loaded checkpoint with its parameters for the --memory-shape given, when the model's
    parameters do not depend on N (see
    :func:`~utils.training.building.parameters_for_memory_shape`)."""
    params, optimizer, info = loaded
    try:
        params = parameters_for_memory_shape(params, info, config.memory_shape)
    except ValueError as error:
        raise ConfigError(f"--memory-shape {format_value(config.memory_shape)}: --load "
                          f"{config.load}: {error}") from None
    info = dict(info, config=dict(info["config"], memory_shape=list(config.memory_shape)))
    return params, optimizer, info


def _same_file(first, second):
    return os.path.abspath(checkpoint_paths(first)[0]) == \
        os.path.abspath(checkpoint_paths(second)[0])


def _claim_checkpoint(config, command_line):
    """Before anything is compiled: check that the output directories can be written, that
    --save replaces no other run's checkpoint without --overwrite, and take --save's lock.

    Returns the lock (None without --save) and notes on what an interrupted run left.
    """
    for option in ("save", "log", "plot"):
        path = getattr(config, option)
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            try:
                check_writable(directory)
            except OSError as error:
                raise ConfigError(f"{option_name(option)} {path}: cannot write in {directory} "
                                  f"({error.strerror or error})") from None
    if not config.save:
        return None, []
    save = config.save
    # The lock first: a run writing the checkpoint now is what to name, before its files.
    lock = CheckpointLock(save, command_line)
    try:
        lock.acquire()
    except CheckpointLocked as error:
        raise ConfigError(f"--save {save}: {error}") from None
    except OSError as error:
        raise ConfigError(f"--save {save}: cannot create its lock {lock.path} "
                          f"({error.strerror or error})") from None
    try:
        continued = config.resume and _same_file(config.resume, save)
        if not continued and not config.overwrite and \
                any(os.path.exists(name) for name in checkpoint_paths(save)):
            whose = " (the one --load reads)" if config.load and _same_file(config.load, save) \
                else ""
            raise ConfigError(f"--save {save}: a checkpoint is there already{whose}; give "
                              f"--overwrite to replace it, or --resume {save} to continue its "
                              f"run")
        notes = lock.notes + recover([save, best_checkpoint_path(save),
                                      average_checkpoint_path(save)])
    except CheckpointError as error:
        lock.release()
        raise ConfigError(f"--save {save}: {error}") from None
    except BaseException:
        lock.release()
        raise
    return lock, notes


def _run_checked(script, start):
    """The run once its configuration is complete: the checks of the machine, the lock of
    --save and the signal handlers around :func:`_run_guarded`."""
    config = start.config
    if config.resume and not config.save:
        config.save = config.resume  # a resumed run keeps writing its own checkpoint
    check_memory(script, config)
    lock, lock_notes = _claim_checkpoint(config, start.command_line)
    start.notes = lock_notes + start.notes
    states = []
    try:
        with InterruptGuard() as guard:
            return _run_guarded(script, start, guard, states)
    except Interrupted as interruption:
        # Before training, or after it (evaluating, plotting): nothing left to save.
        where = (f" after iteration {states[0].iteration}{committed_note(states[0])}" if states
                 else " before training")
        print(f"error: interrupted ({interruption.name}){where}", file=sys.stderr, flush=True)
        raise SystemExit(interruption.exit_code) from None
    finally:
        if lock is not None:
            lock.release()


def _run_guarded(script, start, guard, states):
    """The run once the checkpoint is claimed, with the signal handlers installed; ``states``
    receives the run's state."""
    config, loaded, checkpoint_path = start.config, start.loaded, start.checkpoint
    start_iteration = int(loaded[2]["iteration"]) if config.resume else 0
    if config.resume and config.iterations < start_iteration:
        raise ConfigError(f"--iterations ({config.iterations}) is below the {start_iteration} "
                          f"iterations of the checkpoint {config.resume}")

    task = script.make(config, config.batch_size, config.seed)
    check_episode_params(script, config)
    if loaded is not None:
        mismatch = task_mismatch(loaded[2], task)
        if mismatch:  # a network that reads or writes another number of channels
            raise ConfigError(f"{start.checkpoint_option} {checkpoint_path}: the checkpoint "
                              f"does not match this model: {mismatch}")
    progress = Progress(config.iterations, config.quiet)

    model, trainer = model_and_trainer(config, task, start.mode)
    progress.info(_describe_model(model, config))

    history, wall_time, earlier_runs = [], 0.0, []
    if loaded is not None:
        params, optimizer_values, info = loaded
        try:
            trainer.set_parameter_values(params)
            if config.resume:
                trainer.set_optimizer_values(_spike_state_for(trainer, optimizer_values,
                                                              progress))
                task.set_state(info["task_state"])
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{start.checkpoint_option} {checkpoint_path}: the checkpoint's "
                              f"arrays do not fit the model its document describes: "
                              f"{error}") from None
        # Loaded or resumed, the parameters owe something to every run behind the checkpoint.
        earlier_runs = runs_of(info)
        if config.resume:
            history = list(info.get("history", []))
            wall_time = float(info.get("wall_time_s", 0.0))
        progress.info(f"{'resumed' if config.resume else 'loaded'} {checkpoint_path} "
                      f"(iteration {info['iteration']})")
    for note in start.notes:
        progress.info(note)

    command_line = start.command_line
    this_run = {"command_line": command_line, "started_from": checkpoint_path,
                "first_iteration": start_iteration, "mode": start.mode,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    state = RunState(config=config, trainer=trainer, task=task, history=history,
                      wall_time=wall_time, iteration=start_iteration,
                      task_state=task.get_state(), command_line=command_line,
                      runs=earlier_runs + [this_run], guard=guard)
    if config.resume and _same_file(config.resume, config.save):
        state.committed = start_iteration
    states.append(state)
    if config.resume and config.keep_best:
        state.best = resumed_best(config, loaded[2], progress)
    if config.resume and config.average_after is not None:
        state.average = resumed_average(config, loaded[2], start_iteration, progress)
    result = RunResult(0, config, model, trainer, start_iteration, history)
    log = Log(config.log, append=bool(config.resume)) if config.log else None
    try:
        train(state, script, progress, log)
        if config.save:
            with guard.critical():
                checkpoint(state)
    except TrainingStopped as stop:
        result.exit_code, result.message = EXIT_DIVERGED, str(stop)
    except CheckpointError as error:
        result.exit_code = EXIT_WRITE_FAILED
        result.message = f"training stopped after iteration {state.iteration}: {error}" \
                         f"{committed_note(state)}"
    except KeyboardInterrupt as interruption:
        result.exit_code, result.message = interrupted(state, interruption)
    finally:
        progress.close()
        if log is not None:
            log.close()
    result.iteration = state.iteration
    if result.exit_code:
        print(f"error: {result.message}", file=sys.stderr, flush=True)
        return result

    if config.save:
        progress.info(f"checkpoint written to {checkpoint_paths(config.save)[0]} (a readable "
                      f"copy of its document: {checkpoint_paths(config.save)[1]})")
    if config.keep_best and state.best is not None:
        result.best = restore_best(state, progress)
    if state.average is not None:
        result.averaged = restore_average(state, progress, validation_set(script, config))
    if config.eval_lengths:
        result.evaluation = evaluation_table(config, trainer, script)
    if config.plot:
        # Without training of its own, a loaded model's curve is the one of its checkpoint.
        curve = history or (loaded[2].get("history", []) if loaded is not None else [])
        plot(config, trainer, script, curve, progress)
    return result


def _spike_state_for(trainer, optimizer_values, progress):
    """A checkpoint's optimizer state for a resumed run that turns ``--clip-spikes`` on or off:
    turned on, its running average starts afresh (the first step is never rescaled); turned
    off, the checkpoint's average is dropped."""
    spike_state = [var for var in trainer.optimizer_state if var.name.startswith(SPIKE_STATE)]
    values = OrderedDict((name, value) for name, value in optimizer_values.items()
                         if spike_state or not name.startswith(SPIKE_STATE))
    if len(values) < len(optimizer_values):
        progress.info("--clip-spikes off: the checkpoint's running average of the gradients' "
                      "norms is dropped")
    if spike_state and not any(var.name in values for var in spike_state):
        progress.info("--clip-spikes on: its running average of the gradients' norms starts "
                      "afresh")
        # The state's initial value: no step averaged yet.
        values.update((var.name, np.zeros_like(var.get_value())) for var in spike_state)
    return values


def _describe_model(model, config):
    if model.l_ntm is None:
        return (f"LSTM baseline: {model.lstm_units} units, {model.num_params:,} parameters "
                f"(the NTM with these options: {model.ntm_params:,} parameters)")
    N, M = model.memory_shape
    return (f"NTM: {config.controller} controller of {config.num_units} units, memory {N}x{M}, "
            f"{config.num_reads} read and {config.num_writes} write head(s), "
            f"{model.num_params:,} parameters")
