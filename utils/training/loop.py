"""The training loop: from the run's iteration to ``--iterations``, with validations, log rows,
checkpoints and the changes a configuration schedules (the learning rate, the focus penalty).

Every step is guarded: a step whose loss, gradients or updated values are not finite changes
nothing, and the loop stops with :class:`~utils.training.errors.TrainingStopped`, saving the
last good state first with ``--save``. A first Ctrl-C, SIGTERM or SIGHUP ends the loop after
the iteration under way, and the run saves (:func:`interrupted`).
"""
import time
from contextlib import nullcontext

import numpy as np

from ntm.accel import backend_of
from ntm.accel.kernel_threads import ThreadChoice, threads

from .checkpoints import checkpoint_paths
from .config import last_focus_penalty, learning_rate_at, with_focus_penalty
from .errors import CheckpointError, TrainingStopped
from .evaluation import evaluate, validation_set
from .state import add_to_average, average_scores, checkpoint, committed_note, keep_if_best
from ..interrupts import Interrupted

__all__ = ["EXIT_DIVERGED", "EXIT_INTERRUPTED", "EXIT_WRITE_FAILED", "train", "interrupted"]

#: Exit status of a run that stopped on a non-finite step.
EXIT_DIVERGED = 1
#: Exit status of a run stopped by Ctrl-C (other signals: 128 + their number).
EXIT_INTERRUPTED = 130
#: As argparse's: a checkpoint that cannot be written (a full disk) stops the run like bad input.
EXIT_WRITE_FAILED = 2


def train(state, script, progress, log):
    """Train from ``state.iteration`` to ``--iterations`` (or the first validation below
    ``--stop-below``).

    Parameters
    ----------
    state : utils.training.state.RunState
        Changed as the run goes; checkpointed to ``--save`` every ``--checkpoint-every``
        iterations (the last checkpoint is the caller's).
    script : utils.training.tasks.Script
        Builds the validation task.
    progress : utils.training.reports.Progress
    log : utils.training.reports.Log or None

    Raises
    ------
    TrainingStopped
        At a non-finite step (not applied; with ``--save``, the state before it is saved).
    CheckpointError
        When a checkpoint cannot be written.
    """
    config, trainer, task = state.config, state.trainer, state.task
    if state.iteration >= config.iterations:
        return
    validation = validation_set(script, config)
    penalty_on = with_focus_penalty(config, state.iteration + 1)
    trainer.learning_rate = learning_rate_at(config, state.iteration + 1)
    if not trainer.is_compiled(penalty_on):
        _compile_step(trainer, penalty_on, progress,
                      f"compiling the training function ({trainer.mode} mode)...")
    progress.info(f"training from iteration {state.iteration} to {config.iterations}")
    if config.focus_penalty is not None and not with_focus_penalty(config, config.iterations):
        progress.info(f"the focus penalty never turns on: --focus-penalty-after "
                      f"{config.focus_penalty_after} is not below --iterations "
                      f"{config.iterations}")
    if config.average_after is not None and \
            state.iteration < config.iterations <= config.average_after:
        progress.info(f"--average-after {config.average_after} is not below --iterations "
                      f"{config.iterations}: nothing to average, the run ends with the last "
                      f"iteration's parameters")
    if config.learning_rate_schedule:
        plan = ", ".join(f"{rate:g} after {after}"
                         for after, rate in config.learning_rate_schedule
                         if after > state.iteration and after < config.iterations)
        progress.info(f"learning rate {trainer.learning_rate:g}"
                      + (f", then {plan}" if plan else " to the end"))

    # --kernel-threads N holds for the whole loop, validations included, and a choice made
    # under it keeps it; otherwise the choice times the settings where the fused C kernels
    # run (their threads change nothing elsewhere).
    with threads(config.kernel_threads) if config.kernel_threads is not None else nullcontext():
        choice = (ThreadChoice() if backend_of(trainer.mode) == "c"
                  else ThreadChoice(settings=[None]))
        _train_loop(state, config, trainer, task, validation, penalty_on, progress, log, choice)


def _train_loop(state, config, trainer, task, validation, penalty_on, progress, log, choice):
    """:func:`train`'s iterations, each step with the kernels' threads ``choice`` gives."""
    trials_seen, reported = 0, choice.chosen
    window = _new_window()
    loop_started = time.perf_counter()
    wall_before = state.wall_time
    for iteration in state.guard.between_iterations(range(state.iteration + 1,
                                                           config.iterations + 1)):
        x, y, mask = task.sample_with_mask()
        penalised = with_focus_penalty(config, iteration)
        changes = []
        if penalised and not penalty_on:
            penalty_on = True
            changes.append(f"the focus penalty ({config.focus_penalty:g}) turns on")
        learning_rate = learning_rate_at(config, iteration)
        if learning_rate != trainer.learning_rate:
            trainer.learning_rate = learning_rate
            changes.append(f"the learning rate is {learning_rate:g}")
        if not trainer.is_compiled(penalised):
            # The step of --focus-penalty-after; its compile is no training.
            seconds = _compile_step(trainer, penalised, progress,
                                    f"iteration {iteration}: {' and '.join(changes)}; "
                                    f"compiling its training step...")
            loop_started += seconds
            window["started"] += seconds
        elif changes:
            progress.info(f"iteration {iteration}: {' and '.join(changes)}")
        with choice.step(work=x.shape[1]):  # seconds per time step compared
            step = trainer.train_step(x, y, mask, penalised)
        if choice.trials > trials_seen:  # a trial ended: said the first time and on a change
            if trials_seen == 0 or choice.chosen != reported:
                progress.info(f"iteration {iteration}: {choice.describe('time step')}")
            trials_seen, reported = choice.trials, choice.chosen
        if not step.finite:
            kept = f"the parameters and optimizer state after iteration {state.iteration}"
            where = (f"; they are in the checkpoint {config.save}" if config.save
                     else " (give --save to keep them)")
            if config.save:
                try:
                    checkpoint(state)
                except CheckpointError as error:
                    where = f"; {error}{committed_note(state)}"
            if np.isfinite(step.loss) and np.isfinite(step.grad_norm):
                cause = (f"the loss ({step.loss:.6g}) and the gradient norm "
                         f"({step.grad_norm:.6g}) are finite, but the updated parameters or "
                         f"optimizer state would not be (is the learning rate, "
                         f"{trainer.learning_rate:g}, too large?)")
            else:
                cause = f"the loss is {step.loss} and the gradient norm {step.grad_norm}"
            raise TrainingStopped(
                f"training stopped at iteration {iteration}: {cause}; the step was not "
                f"applied, so the model holds {kept}{where}")
        state.iteration = iteration
        if config.average_after is not None and iteration > config.average_after:
            if state.average is None:
                progress.info(f"iteration {iteration}: averaging the parameters from here on "
                              f"(--average-after {config.average_after})")
            add_to_average(state)
        state.task_state = task.get_state()
        state.wall_time = wall_before + time.perf_counter() - loop_started
        window["loss"].append(step.loss)
        window["bits"].append(step.bits_per_seq)
        window["grad_norm"].append(step.grad_norm)
        window["sequences"] += x.shape[0]

        now = time.perf_counter()
        rate = window["sequences"] / max(now - window["started"], 1e-9)
        remaining = (config.iterations - iteration) * x.shape[0] / rate if rate > 0 else np.inf
        progress.update(iteration, float(np.mean(window["loss"])), float(np.mean(window["bits"])),
                        rate, remaining)

        last = iteration == config.iterations
        validate = last or (config.validate_every > 0 and iteration % config.validate_every == 0)
        if validate or iteration % config.log_every == 0:
            row = {"iteration": iteration, "loss": float(np.mean(window["loss"])),
                   "train_bits_per_seq": float(np.mean(window["bits"])),
                   "val_bits_per_seq": None, "val_errors_per_seq": None,
                   "seq_per_s": rate, "elapsed_s": state.wall_time,
                   # the largest raw gradient norm since the last row: where spikes show
                   "grad_norm_max": float(np.max(window["grad_norm"]))}
            if penalised:  # the rows of runs without it stay as they were
                row["focus_penalty"] = config.focus_penalty
            if config.learning_rate_schedule:  # so do those of runs without a schedule
                row["learning_rate"] = trainer.learning_rate
            if validate:
                scores = evaluate(trainer.predict, validation, config.output)
                row["val_bits_per_seq"] = scores["bits_per_seq"]
                row["val_errors_per_seq"] = scores["errors_per_seq"]
                if state.average is not None:  # and the mean's, once --average-after started
                    scores = average_scores(state, validation)
                    row["avg_val_bits_per_seq"] = scores["bits_per_seq"]
                    row["avg_val_errors_per_seq"] = scores["errors_per_seq"]
            state.history.append(row)
            # With the penalty turned on, earlier validations were of another objective.
            if validate and config.keep_best and \
                    row.get("focus_penalty") == last_focus_penalty(config):
                keep_if_best(state, row)
            if log is not None:
                log.write(row)
            progress.row(row, force_line=validate)
            window = _new_window()
            if validate and config.stop_below is not None \
                    and row["val_bits_per_seq"] < config.stop_below:
                progress.info(f"validation below {config.stop_below:g} bits per sequence at "
                              f"iteration {iteration} ({iteration * config.batch_size} "
                              f"sequences): stopping")
                if not with_focus_penalty(config, iteration) and \
                        with_focus_penalty(config, config.iterations):
                    progress.info(f"(before the focus penalty turns on after iteration "
                                  f"{config.focus_penalty_after}: the heads may still be "
                                  f"spread where they have nothing to do)")
                return
        if config.save and config.checkpoint_every and iteration % config.checkpoint_every == 0 \
                and not last:
            checkpoint(state)


def _new_window():
    """What the steps since the last log row add up: their losses, bits, gradient norms."""
    return {"loss": [], "bits": [], "grad_norm": [], "sequences": 0,
            "started": time.perf_counter()}


def _compile_step(trainer, with_focus_penalty, progress, announcement):
    """Compile (or load from the cache) a training step, saying so; returns the seconds."""
    progress.info(announcement)
    seconds = trainer.compile(with_focus_penalty)
    name = "train_focus" if with_focus_penalty else "train"
    progress.info(f"loaded the compiled function from the cache in {seconds:.1f} s"
                  if name in trainer.loaded else f"compiled in {seconds:.1f} s")
    return seconds


def interrupted(state, interruption):
    """After an interrupt in training: save, unless a second interrupt stops it (the last
    committed checkpoint is kept).

    Returns
    -------
    exit_code : int
        128 + the signal's number, or :data:`EXIT_WRITE_FAILED` when the save failed.
    message : str
    """
    config = state.config
    name = getattr(interruption, "name", "SIGINT")
    code = getattr(interruption, "exit_code", EXIT_INTERRUPTED)
    message = f"interrupted ({name}) after iteration {state.iteration}"
    if getattr(interruption, "again", False):
        return code, f"{message}; interrupted again: stopped without saving{committed_note(state)}"
    if not config.save:
        return code, message
    if state.committed == state.iteration:  # nothing trained since the last checkpoint
        return code, f"{message}{committed_note(state)}; resume with --resume {config.save}"
    try:
        with state.guard.critical():
            checkpoint(state)
    except Interrupted:
        return code, (f"{message}; interrupted again while saving: stopped without saving"
                      f"{committed_note(state)}")
    except CheckpointError as error:
        return EXIT_WRITE_FAILED, f"{message}; {error}{committed_note(state)}"
    return code, (f"{message}; checkpoint written to {checkpoint_paths(config.save)[0]}; resume "
                  f"with --resume {config.save}")
