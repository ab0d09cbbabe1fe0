"""The training loop shared by the example scripts: command line, model, training, checkpoints.

Every script in ``examples/`` describes its task (the task's options, how to build it, which
episode parameter ``--eval-lengths`` varies) and hands over to :func:`run`, which

1. parses the shared command line made by :func:`make_parser` and checks it, naming the option
   at fault;
2. builds the network with :func:`build_model`: an NTM (or, with ``--model lstm``, an LSTM
   baseline of about as many parameters) followed by a dense output layer, sigmoid for bit
   outputs, softmax for categorical ones;
3. compiles, once, a training function whose updates are guarded against non-finite steps, a
   prediction function and the NTM's details function (:class:`Trainer`), and keeps them on
   disk so that the next run of the same model loads them (:mod:`utils.function_cache`);
4. trains with a progress bar, periodic validation on a fixed set of sequences drawn by a
   separate task instance, a CSV or JSON-lines log and atomic checkpoints that hold the
   parameters, the optimizer state and everything needed to resume where the run stopped
   (:func:`save_checkpoint`);
5. evaluates at the values of ``--eval-lengths`` and draws the heat maps of an episode and the
   learning curve.

A script is a few lines::

    from utils import training

    parser = training.make_parser(__doc__, [training.TaskOption("size", int, 8, "bits per vector",
                                                                affects_model=True)])
    result = training.run(parser, lambda options, **kwargs: CopyTask(size=options.size, **kwargs))
    sys.exit(result.exit_code)
"""
import argparse
import csv
import json
import math
import os
import re
import shlex
import sys
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace
from pytensor.link.jax.linker import JAXLinker  # imported by PyTensor itself; needs no jax

from ntm.accel import accelerated
from ntm.controllers import DenseController, GRUController, LSTMController, RecurrentController
from ntm.heads import ReadHead, WriteHead
from ntm.lasagne import layers, nonlinearities, objectives
from ntm.lasagne import random as lasagne_random
from ntm.lasagne import updates as lasagne_updates
from ntm.layers import NTMLayer
from ntm.memory import Memory
from ntm.updates import graves_rmsprop

from . import resources
from .checkpoints import (CheckpointError, CheckpointLock, CheckpointLocked, check_writable,
                          checkpoint_paths, copy_checkpoint, read_checkpoint, recover,
                          write_checkpoint)
from .function_cache import cached_function
from .interrupts import InterruptGuard, Interrupted
from .metrics import bit_errors, bits_per_sequence

# Without a BLAS library to link, the C backend computes its matrix products with NumPy's (which
# has one); the warning PyTensor prints about it in every run says nothing actionable here.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")

__all__ = [
    "DEFAULT_MODE",
    "LEARNING_RATES",
    "CONTROLLERS",
    "OUTPUT_KINDS",
    "JAX_UNSUPPORTED_PYTENSOR",
    "LOG_COLUMNS",
    "TaskOption",
    "Model",
    "StepResult",
    "Trainer",
    "RunResult",
    "TrainingStopped",
    "make_parser",
    "parse_config",
    "build_model",
    "build_ntm",
    "build_lstm_baseline",
    "lstm_units_for",
    "masked_loss",
    "score",
    "save_checkpoint",
    "load_checkpoint",
    "load_best_parameters",
    "load_model",
    "parameters_for_memory_shape",
    "checkpoint_paths",
    "curve_path",
    "best_checkpoint_path",
    "run",
    "reuse_compiled_models",
]

#: PyTensor mode used unless ``--mode`` or the environment variable ``NTM_MODE`` says otherwise.
#: Chosen with ``benchmarks/train_step.py`` (see the README): the C backend starts training in
#: about 8 s and steps 6 to 9 times faster than FAST_COMPILE; Numba steps up to 2 times faster
#: still, but its first run compiles for about 3 minutes (cached on disk afterwards), so it is
#: the choice for long runs (``--mode NUMBA``), not the default.
DEFAULT_MODE = "CVM"

#: Decay of the running average of the gradients' norms that ``--clip-spikes`` compares a
#: step's norm with (a window of about 100 steps).
SPIKE_AVERAGE_DECAY = 0.99

#: Learning rate of each optimizer when ``--learning-rate`` is not given. Graves' RMSProp at
#: 3e-4 rather than the paper's 1e-4: on the copy task (``benchmarks/convergence.py``, an earlier
#: compiled graph) 5 of 5 seeds converged after 1,500-2,500 sequences, where at 1e-4 two of
#: four stayed at chance level for 9,000-15,000 (the README has the current graph's figures).
LEARNING_RATES = OrderedDict([("graves_rmsprop", 3e-4), ("adam", 1e-3), ("rmsprop", 1e-3)])

#: Controller classes by their ``--controller`` name.
CONTROLLERS = OrderedDict([("dense", DenseController), ("recurrent", RecurrentController),
                           ("lstm", LSTMController), ("gru", GRUController)])

#: ``"bits"``: independent sigmoid outputs scored by binary cross-entropy (the algorithmic
#: tasks); ``"categorical"``: a softmax over the output channels scored by categorical
#: cross-entropy (question answering).
OUTPUT_KINDS = ("bits", "categorical")

#: Columns of the ``--log`` file, in order.
LOG_COLUMNS = ("iteration", "loss", "train_bits_per_seq", "val_bits_per_seq",
               "val_errors_per_seq", "seq_per_s", "elapsed_s", "grad_norm_max")

# Options that decide the network's shape: a checkpoint only fits a model built with the same.
_MODEL_OPTIONS = ("model", "output", "controller", "num_units", "num_reads", "num_writes",
                  "memory_shape", "num_shifts")
# Options a resumed run takes from its checkpoint unless given again on the command line.
_TRAINING_OPTIONS = ("iterations", "optimizer", "learning_rate", "learning_rate_schedule",
                     "max_norm", "grad_clip",
                     "clip_spikes", "focus_penalty", "focus_penalty_after",
                     "learn_memory_init",
                     "batch_size", "seed", "validate_every", "validation_batches",
                     "checkpoint_every", "log_every", "stop_below", "keep_best", "average_after",
                     "floatX", "log")
# Prefix of the names of --clip-spikes' optimizer state.
_SPIKE_STATE = "clip_spikes."
_PROBABILITY_CLIP = 1e-6
_EXIT_DIVERGED = 1
_EXIT_INTERRUPTED = 130
# As argparse's: a checkpoint that cannot be written (a full disk) stops the run like bad input.
_EXIT_WRITE_FAILED = 2
# numpy.random.RandomState takes seeds from 0 to 2**32 - 1.
_MAX_SEED = 2 ** 32 - 1
_PLOT_FORMATS = (".png", ".pdf", ".svg")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

class TaskOption(NamedTuple):
    """A command-line option of a task, e.g. ``TaskOption("max-length", int, 20, "...")``.

    Parameters
    ----------
    name : str
        Option name without the dashes (``"max-length"`` gives ``--max-length`` and the
        attribute ``max_length`` of the configuration).
    type : type
        ``int``, ``float``, ``str`` or ``bool`` (a bool becomes ``--name/--no-name``).
    default : object
        Default value (None allowed: the task then picks).
    help : str
        Help text.
    affects_model : bool
        Whether the option changes the network's input or output size (e.g. the number of
        bits) or what its input channels mean (e.g. how a count is encoded), so that a
        checkpoint trained with another value cannot be used: ``--load`` and ``--resume`` take
        it from the checkpoint and refuse a different value.
    earlier_value : object
        The value that checkpoints written before the option existed were trained with (None:
        the option is as old as the checkpoints).
    """

    name: str
    type: type
    default: Any
    help: str
    affects_model: bool = False
    earlier_value: Any = None

    @property
    def dest(self):
        """The attribute name in the configuration."""
        return self.name.replace("-", "_")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """Keep the script's docstring as written and show the options' defaults."""

    def _get_help_string(self, action):
        # "(default: None)" says nothing, and some help texts describe their default already.
        empty = action.default is None or action.default is False or action.default in ({}, [])
        if empty:
            return action.help
        if "default" in (action.help or ""):
            if "%(default)" in action.help:
                return action.help
            if action.type is _learning_rate_schedule:
                return (action.help.replace("%", "%%")
                        + f" (this script's default: {_format_schedule(action.default)})")
            # A general default described (the optimizer's rate) that the script replaced.
            return action.help + " (this script's default: %(default)s)"
        return super()._get_help_string(action)


def _positive_int_list(text):
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 20,40,80, got {text!r}") from None
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 20,40,80, got {text!r}")
    return values


def _iterations_or_none(text):
    """An iteration count, or ``none`` (a script's default turned off) as None."""
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of iterations or 'none', got {text!r}") from None


def _learning_rate_schedule(text):
    """``ITERATIONS:RATE,...`` as ``[[iterations, rate], ...]`` (iterations increasing);
    ``none`` (or nothing) as ``[]``."""
    example = "such as 24000:2e-4,30000:1e-4"
    schedule = []
    if text.strip().lower() == "none":
        return schedule
    for item in text.split(","):
        if not item.strip():
            continue
        after, sep, rate = item.partition(":")
        try:
            after, rate = int(after), float(rate)
        except ValueError:
            after = rate = None
        if not sep or after is None:
            raise argparse.ArgumentTypeError(
                f"expected ITERATIONS:RATE pairs separated by commas {example}, got {text!r}")
        if after < 1 or not (math.isfinite(rate) and rate > 0):
            raise argparse.ArgumentTypeError(
                f"expected iterations >= 1 and rates > 0 {example}, got {item.strip()!r}")
        if schedule and after <= schedule[-1][0]:
            raise argparse.ArgumentTypeError(
                f"the iterations must increase {example}, got {text!r}")
        schedule.append([after, rate])
    return schedule


def _parse_value(text):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _key_value_pairs(text):
    pairs = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(
                f"expected NAME=VALUE pairs separated by commas such as length=40, got {text!r}")
        pairs[key.strip()] = _parse_value(value.strip())
    return pairs


def make_parser(description, task_options, eval_param="length", output="bits"):
    """The command line shared by the example scripts.

    Parameters
    ----------
    description : str
        The script's docstring (shown as written by ``--help``).
    task_options : sequence of TaskOption
        The task's own options.
    eval_param : str
        The episode parameter that ``--eval-lengths`` sets (``"length"`` for the copy task,
        ``"repeats"`` for repeat copy, ...).
    output : {"bits", "categorical"}
        The kind of output layer and loss (see :data:`OUTPUT_KINDS`).

    Returns
    -------
    argparse.ArgumentParser
        Scripts change its defaults (model sizes, iterations, optimizer) with
        ``parser.set_defaults``. ``output`` and ``eval_param`` are stored as defaults too, so
        they travel with the configuration; the task options are in ``parser.task_options``.
    """
    if output not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {output!r}")
    parser = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    parser.task_options = tuple(task_options)

    task = parser.add_argument_group("task")
    for option in parser.task_options:
        if option.type is bool:
            task.add_argument(f"--{option.name}", action=argparse.BooleanOptionalAction,
                              default=option.default, help=option.help)
        else:
            task.add_argument(f"--{option.name}", type=option.type, default=option.default,
                              help=option.help)

    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=("ntm", "lstm"), default="ntm",
                       help="an NTM, or an LSTM baseline whose number of units makes its "
                            "parameter count close to the NTM's with the same options")
    model.add_argument("--controller", choices=tuple(CONTROLLERS), default="dense",
                       help="the NTM's controller")
    model.add_argument("--num-units", type=int, default=100, help="controller units")
    model.add_argument("--num-reads", type=int, default=1, help="number of read heads")
    model.add_argument("--num-writes", type=int, default=1, help="number of write heads")
    model.add_argument("--memory-shape", type=int, nargs=2, default=[128, 20],
                       metavar=("N", "M"),
                       help="memory locations N and their size M; with --load, N may differ "
                            "from the checkpoint's where no trained parameter spans the memory "
                            "(its initial memory and weightings are constants)")
    model.add_argument("--num-shifts", type=int, default=3,
                       help="number of shift offsets of each head (odd)")
    model.add_argument("--learn-memory-init", action=argparse.BooleanOptionalAction,
                       default=True,
                       help="train the memory's initial state M_0, or keep it at its small "
                            "constant (--no-learn-memory-init); this task's default: "
                            "%(default)s")

    train = parser.add_argument_group("training")
    train.add_argument("--iterations", type=int, default=10000,
                       help="training iterations (batches) in all, counting those of a "
                            "resumed checkpoint (whose own target is kept unless given)")
    train.add_argument("--batch-size", type=int, default=1, help="sequences per batch")
    train.add_argument("--seed", type=int, default=0,
                       help="seed of the initial parameters and of the training data; "
                            "validation, evaluation and plots use seeds derived from it")
    train.add_argument("--optimizer", choices=tuple(LEARNING_RATES), default="graves_rmsprop",
                       help="update rule (graves_rmsprop: Graves 2013, as in the NTM paper)")
    rates = ", ".join(f"{name} {rate:g}" for name, rate in LEARNING_RATES.items())
    train.add_argument("--learning-rate", type=float, default=None,
                       help=f"step size; by default the optimizer's ({rates})")
    train.add_argument("--learning-rate-schedule", type=_learning_rate_schedule, default=[],
                       metavar="ITERATIONS:RATE,...",
                       help="lower (or raise) the learning rate during the run: after "
                            "ITERATIONS iterations, train at RATE; e.g. --learning-rate 5e-4 "
                            "--learning-rate-schedule 24000:2e-4,30000:1e-4 trains the first "
                            "24,000 iterations at 5e-4, the next 6,000 at 2e-4 and the rest "
                            "at 1e-4, as would a run resumed at each rate; 'none': none; a "
                            "--learning-rate given without it trains at that rate throughout "
                            "(default: none)")
    train.add_argument("--max-norm", type=float, default=10.0,
                       help="rescale the gradients when their total norm exceeds this (0: off)")
    train.add_argument("--grad-clip", type=float, default=None,
                       help="clip every gradient element to [-value, value] (default: off)")
    train.add_argument("--clip-spikes", type=float, default=None, metavar="K",
                       help="rescale a step whose gradients' total norm exceeds K times the "
                            "running average of the earlier steps' norms (decay "
                            f"{SPIKE_AVERAGE_DECAY}) to that norm (0: off)")
    train.add_argument("--focus-penalty", type=float, default=None, metavar="LAMBDA",
                       help="add LAMBDA times the mean entropy (nats) of the read and of the "
                            "write heads' weightings to the loss the gradients are taken of, "
                            "pulling every head onto one location (0: off); e.g. 0.1 for a "
                            "few thousand batches after convergence")
    train.add_argument("--focus-penalty-after", type=int, default=0, metavar="ITERATIONS",
                       help="with --focus-penalty: train the first ITERATIONS iterations on "
                            "the loss alone, the rest with the penalty (0: all with it)")
    train.add_argument("--mode", default=None,
                       help=f"PyTensor mode: CVM (C backend, starts soonest), NUMBA (fastest "
                            f"steps; its first run compiles for minutes, then it is cached), "
                            f"or FAST_COMPILE; default: the environment variable NTM_MODE, "
                            f"else {DEFAULT_MODE}")
    train.add_argument("--floatX", choices=("float32", "float64"), default="float32",
                       help="float type of the parameters, data and computations (float32 is "
                            "faster; float64 for exact comparisons)")
    train.add_argument("--quiet", action="store_true",
                       help="print no progress, only the evaluation table and errors")
    train.add_argument("--log-every", type=int, default=100,
                       help="iterations between progress lines and log rows")
    train.add_argument("--debug-nan-at", type=int, default=None, help=argparse.SUPPRESS)

    checkpoints = parser.add_argument_group("checkpoints")
    checkpoints.add_argument("--save", metavar="PATH.npz", default=None,
                             help="write checkpoints here: PATH.npz (parameters, optimizer "
                                  "state and a document of the options, iteration, random "
                                  "state and history), each committed whole in one step, and "
                                  "PATH.json, a readable copy of the document; the run holds "
                                  "PATH.lock meanwhile")
    checkpoints.add_argument("--overwrite", action="store_true",
                             help="let --save replace a checkpoint of another run (needed "
                                  "unless it is the one --resume continues)")
    checkpoints.add_argument("--load", metavar="PATH.npz", default=None,
                             help="start from the parameters of this checkpoint (to evaluate, "
                                  "plot or fine-tune; the optimizer starts afresh, which can "
                                  "throw a nearly converged model back: --resume keeps its "
                                  "state); model and task options not given are taken from "
                                  "it")
    checkpoints.add_argument("--resume", metavar="PATH.npz", default=None,
                             help="continue this checkpoint's run up to --iterations, "
                                  "exactly as if it had not stopped; options not given are "
                                  "the checkpoint's, and checkpoints go back to it unless "
                                  "--save is given")
    checkpoints.add_argument("--checkpoint-every", type=int, default=1000,
                             help="iterations between checkpoints with --save (0: only at "
                                  "the end)")

    evaluation = parser.add_argument_group("evaluation and output")
    evaluation.add_argument("--validate-every", type=int, default=500,
                            help="iterations between validations (0: only at the end)")
    evaluation.add_argument("--stop-below", type=float, default=None, metavar="BITS",
                            help="stop training at the first validation whose bits per "
                                 "sequence are below this (default: train all iterations)")
    evaluation.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=False,
                            help="end with the parameters of the validation with the lowest "
                                 "bits per sequence (of those trained with the run's last "
                                 "objective: after --focus-penalty-after, those with the "
                                 "penalty): the evaluation and the plot use them, and "
                                 "--save writes them, with their optimizer state, to "
                                 "PATH-best.npz at each new best (PATH.npz keeps the last "
                                 "iteration's, for --resume)")
    evaluation.add_argument("--average-after", type=_iterations_or_none, default=None,
                            metavar="ITERATIONS",
                            help="end with the mean of the parameters after each iteration "
                                 "past ITERATIONS (Polyak averaging): the evaluation and the "
                                 "plot use it, and --save writes it to PATH-average.npz (PATH.npz "
                                 "keeps the last iteration's and the running sum, for --resume), "
                                 "and validations give the mean's cost too; "
                                 "e.g. over the last tens of thousands of iterations at a low "
                                 "learning rate; 'none': off (default: off)")
    evaluation.add_argument("--validation-batches", type=int, default=8,
                            help="batches (of --batch-size sequences) in the fixed "
                                 "validation set")
    evaluation.add_argument("--eval-lengths", type=_positive_int_list, default=None,
                            metavar="V1,V2,...",
                            help=f"after training, evaluate at these values of the task's "
                                 f"'{eval_param}' and print a table")
    evaluation.add_argument("--eval-batches", type=int, default=8,
                            help="batches (of --batch-size sequences) per --eval-lengths value")
    evaluation.add_argument("--plot", metavar="FILE.png", default=None,
                            help="draw the heat maps of one episode to FILE.png and the "
                                 "learning curve (training and validation costs) to "
                                 "FILE-curve.png")
    evaluation.add_argument("--plot-params", type=_key_value_pairs, default={},
                            metavar="NAME=VALUE,...",
                            help=f"episode parameters of the plotted episode, e.g. "
                                 f"{eval_param}=40; the others are drawn as in training")
    evaluation.add_argument("--log", metavar="FILE.csv|FILE.jsonl", default=None,
                            help=f"write one row per --log-every iterations: "
                                 f"{', '.join(LOG_COLUMNS)}")
    parser.set_defaults(output=output, eval_param=eval_param)
    return parser


class _Unset:
    """Marks the options that the command line did not give."""

    def __repr__(self):
        return "<unset>"


_UNSET = _Unset()


def parse_config(parser, argv=None):
    """Parse a command line and tell which options it gave explicitly.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        From :func:`make_parser`.
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    config : argparse.Namespace
        Every option, defaults filled in.
    explicit : set of str
        Attribute names of the options given on the command line.
    """
    actions = [action for action in parser._actions if action.dest != "help"]
    namespace = argparse.Namespace(**{action.dest: _UNSET for action in actions})
    parsed = parser.parse_args(argv, namespace=namespace)
    explicit = {action.dest for action in actions if getattr(parsed, action.dest) is not _UNSET}
    for action in actions:
        if getattr(parsed, action.dest) is _UNSET:
            default = parser.get_default(action.dest)
            # argparse converts string defaults with the option's type; so must we here.
            if isinstance(default, str) and action.type is not None:
                default = action.type(default)
            setattr(parsed, action.dest, default)
    return parsed, explicit


def _option_name(dest):
    return "--" + dest.replace("_", "-")


def _model_options(parser):
    return _MODEL_OPTIONS + tuple(o.dest for o in parser.task_options if o.affects_model)


def _check_config(parser, config):
    """Fail early, naming the option, on values that cannot work."""
    problems = []

    def require(condition, option, message):
        if not condition:
            problems.append(f"{_option_name(option)}: {message}")

    for option in ("iterations", "checkpoint_every", "validate_every", "focus_penalty_after"):
        require(getattr(config, option) >= 0, option,
                f"must be >= 0, got {getattr(config, option)}")
    if config.average_after is not None:
        require(config.average_after >= 0, "average_after",
                f"must be >= 0, got {config.average_after}")
        require(not config.keep_best, "average_after",
                "give --keep-best or --average-after, not both (each picks the parameters the "
                "run ends with)")
    for option in ("batch_size", "num_units", "log_every", "validation_batches",
                   "eval_batches"):
        require(getattr(config, option) >= 1, option,
                f"must be >= 1, got {getattr(config, option)}")
    for option in ("num_reads", "num_writes"):
        require(getattr(config, option) >= 0, option,
                f"must be >= 0, got {getattr(config, option)}")
    require(config.num_reads + config.num_writes >= 1, "num_reads",
            "the NTM needs at least one head (--num-reads + --num-writes >= 1)")
    shape = list(config.memory_shape)
    require(len(shape) == 2 and all(size >= 1 for size in shape), "memory_shape",
            f"N and M must be positive integers, got {' '.join(map(str, shape))}")
    shifts = config.num_shifts
    require(shifts >= 1 and shifts % 2 == 1, "num_shifts",
            f"must be a positive odd integer, got {shifts}")
    if shape and shape[0] >= 1:
        require(shifts <= shape[0], "num_shifts",
                f"{shifts} shifts exceed the {shape[0]} memory locations")
    require(config.optimizer in LEARNING_RATES, "optimizer",
            f"must be one of {', '.join(LEARNING_RATES)}, got {config.optimizer!r}")
    if config.learning_rate is not None:
        require(config.learning_rate > 0, "learning_rate",
                f"must be > 0, got {config.learning_rate}")
        if config.learning_rate > 0:
            require(_representable(config.learning_rate, config.floatX), "learning_rate",
                    f"{config.learning_rate:g} is not a finite number > 0 in "
                    f"{config.floatX} (--floatX), whose range is "
                    f"{_float_range(config.floatX)}")
    for _, rate in config.learning_rate_schedule:
        if not _representable(rate, config.floatX):
            require(False, "learning_rate_schedule",
                    f"{rate:g} is not a finite number > 0 in {config.floatX} (--floatX), whose "
                    f"range is {_float_range(config.floatX)}")
            break
    require(0 <= config.seed <= _MAX_SEED, "seed",
            f"must be an integer from 0 to {_MAX_SEED}, got {config.seed}")
    require(config.max_norm >= 0, "max_norm", f"must be >= 0 (0: off), got {config.max_norm}")
    require(config.stop_below is None or config.stop_below > 0, "stop_below",
            f"must be > 0, got {config.stop_below}")
    if config.grad_clip is not None:
        require(config.grad_clip > 0, "grad_clip", f"must be > 0, got {config.grad_clip}")
    if config.clip_spikes is not None:
        require(config.clip_spikes >= 0, "clip_spikes",
                f"must be >= 0 (0: off), got {config.clip_spikes}")
    if config.focus_penalty is not None:
        require(config.focus_penalty >= 0, "focus_penalty",
                f"must be >= 0 (0: off), got {config.focus_penalty}")
        require(config.focus_penalty == 0 or config.model != "lstm", "focus_penalty",
                "needs the NTM's heads (not --model lstm)")
    if config.debug_nan_at is not None:
        require(config.debug_nan_at >= 1, "debug_nan_at",
                f"must be >= 1, got {config.debug_nan_at}")
    if config.load and config.resume:
        problems.append("--load and --resume: give one or the other")
    for option in ("load", "resume"):
        path = getattr(config, option)
        if path:
            npz = checkpoint_paths(path)[0]
            require(os.path.isfile(npz), option, f"no checkpoint at {path} (expected {npz})")
    if config.save:
        require(config.save.endswith(".npz"), "save", f"must name a .npz file, got {config.save}")
    if config.log:
        require(config.log.endswith((".csv", ".jsonl")), "log",
                f"must name a .csv or .jsonl file, got {config.log}")
    if config.plot:
        require(config.plot.lower().endswith(_PLOT_FORMATS), "plot",
                f"must name a {', '.join(_PLOT_FORMATS)} file, got {config.plot}")
    for option in ("save", "log", "plot"):
        path = getattr(config, option)
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            require(os.path.isdir(directory), option, f"the directory {directory} does not exist")
    if problems:
        parser.error("; ".join(problems))


#: PyTensor versions whose JAX backend was found unable to run the examples' models at all:
#: the scan over the sequence allocates its states and outputs with the batch size of the
#: input, which JAX traces (JAX: "Shapes must be 1D sequences of concrete values").
JAX_UNSUPPORTED_PYTENSOR = ("3.0.7",)


def _representable(value, floatX):
    """Whether ``value`` stays a finite number > 0 in the float type ``floatX``."""
    with np.errstate(over="ignore", under="ignore"):
        cast = np.asarray(value, dtype=floatX)
    return bool(np.isfinite(cast) and cast > 0)


def _float_range(floatX):
    info = np.finfo(floatX)
    return f"{float(info.smallest_normal):.3g} to {float(info.max):.3g}"


def _resolve_mode(parser, config):
    mode = config.mode or os.environ.get("NTM_MODE") or DEFAULT_MODE
    try:
        linker = pytensor.compile.mode.get_mode(mode).linker
    except Exception as error:  # PyTensor raises several kinds for an unknown mode
        parser.error(f"--mode: unknown PyTensor mode {mode!r} ({error})")
    if isinstance(linker, JAXLinker):
        if pytensor.__version__ in JAX_UNSUPPORTED_PYTENSOR:
            parser.error(f"--mode: {mode} cannot run these models with PyTensor "
                         f"{pytensor.__version__}: its JAX backend needs the shapes of the "
                         f"sequences when it compiles; use CVM or NUMBA")
        if config.iterations:
            # The gradient of a scan over sequences of unknown length fails in PyTensor's JAX
            # backend (docs/upstream/jax_scan_gradient.py); the forward pass runs.
            parser.error(f"--mode: {mode} evaluates a model (--iterations 0) but cannot train "
                         f"one with PyTensor {pytensor.__version__}: its JAX backend cannot "
                         f"differentiate a scan over sequences of unknown length; train with "
                         f"CVM or NUMBA")
    return mode


def _with_option_names(message, parser):
    """Write the task's argument names in a message the way the command line spells them."""
    for option in parser.task_options:
        message = re.sub(rf"\b{option.dest}\b", f"--{option.name}", message)
    return message


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

@dataclass
class Model:
    """A network built by :func:`build_model`.

    Attributes
    ----------
    l_input : InputLayer
        The sequence, ``(batch, time, input_size)``.
    l_ntm : NTMLayer or None
        The NTM (None for the LSTM baseline).
    l_output : Layer
        The predictions, ``(batch, time, output_size)``.
    output : {"bits", "categorical"}
        The kind of output.
    memory_shape : tuple of int
        ``(N, M)`` of the NTM (as configured, also for the LSTM baseline).
    """

    l_input: Any
    l_ntm: Any
    l_output: Any
    output: str
    memory_shape: tuple

    @property
    def num_params(self):
        """Number of trainable scalar parameters."""
        return layers.count_params(self.l_output, trainable=True)


def _output_layer(l_sequence, num_units, output_size, output, l_input):
    """A dense layer applied at every time step: sigmoid or softmax over the channels."""
    nonlinearity = nonlinearities.sigmoid if output == "bits" else nonlinearities.softmax
    l_flat = layers.ReshapeLayer(l_sequence, (-1, num_units))
    l_dense = layers.DenseLayer(l_flat, output_size, nonlinearity=nonlinearity, name="output")
    return layers.ReshapeLayer(l_dense, (l_input.input_var.shape[0], -1, output_size))


def build_ntm(input_size, output_size, controller="dense", num_units=100, memory_shape=(128, 20),
              num_reads=1, num_writes=1, num_shifts=3, output="bits", learn_memory_init=True):
    """An NTM followed by a dense output layer applied at every step.

    Parameters
    ----------
    input_size, output_size : int
        Features of the input and output sequences.
    controller : str
        A key of :data:`CONTROLLERS`.
    num_units : int
        Controller units.
    memory_shape : tuple of int
        ``(N, M)``.
    num_reads, num_writes : int
        Number of read and write heads (named ``read0``, ``read1``, ... and ``write0``, ...).
    num_shifts : int
        Shift offsets of each head.
    output : {"bits", "categorical"}
        Sigmoid or softmax outputs.
    learn_memory_init : bool
        Train the memory's initial state :math:`M_0` (default). Kept at its small constant
        instead, every location the heads have not written looks the same, also beyond those
        a training sequence reaches. Measured on copy over five seeds, it converges about
        as reliably, and generalises to length 120 for no more seeds (README, Results).

    Returns
    -------
    Model
    """
    memory_shape = tuple(int(size) for size in memory_shape)
    l_input = layers.InputLayer((None, None, input_size))
    memory = Memory(memory_shape, learn_init=learn_memory_init, name="memory")
    l_controller = CONTROLLERS[controller](l_input, memory_shape, num_units, num_reads,
                                           name="controller")
    heads = ([WriteHead(l_controller, num_shifts, memory_shape, name=f"write{i}")
              for i in range(num_writes)]
             + [ReadHead(l_controller, num_shifts, memory_shape, name=f"read{i}")
                for i in range(num_reads)])
    l_ntm = NTMLayer(l_input, memory, l_controller, heads, name="ntm")
    l_output = _output_layer(l_ntm, num_units, output_size, output, l_input)
    return Model(l_input, l_ntm, l_output, output, memory_shape)


def lstm_units_for(num_params, input_size, output_size):
    """The number of units that gives an LSTM baseline about ``num_params`` parameters.

    The baseline (:func:`build_lstm_baseline`) has, for ``U`` units, four gates of input,
    recurrent weights and biases, three peephole vectors and the output layer:
    ``4 U^2 + (4 I + 7 + O) U + O`` parameters.

    Parameters
    ----------
    num_params : int
        The parameter count to approach (the NTM's).
    input_size, output_size : int

    Returns
    -------
    int
        The positive number of units whose count is closest to ``num_params``.
    """
    a, b, c = 4.0, 4.0 * input_size + 7.0 + output_size, float(output_size - num_params)
    root = (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)

    def count(units):
        return 4 * units ** 2 + (4 * input_size + 7 + output_size) * units + output_size

    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(candidates, key=lambda units: (abs(count(units) - num_params), units))


def build_lstm_baseline(input_size, output_size, num_units, output="bits",
                        memory_shape=(128, 20)):
    """An LSTM layer (with peepholes) followed by a dense output layer applied at every step.

    Parameters
    ----------
    input_size, output_size : int
    num_units : int
        LSTM units.
    output : {"bits", "categorical"}
    memory_shape : tuple of int
        Recorded in the model only (the baseline has no memory).

    Returns
    -------
    Model
        With ``l_ntm`` None.
    """
    l_input = layers.InputLayer((None, None, input_size))
    l_lstm = layers.LSTMLayer(l_input, num_units, name="lstm")
    l_output = _output_layer(l_lstm, num_units, output_size, output, l_input)
    return Model(l_input, None, l_output, output, tuple(memory_shape))


def build_model(config, task):
    """The network the configuration describes, sized for the task.

    Parameters
    ----------
    config : argparse.Namespace
        Options of :func:`make_parser` (``model``, ``controller``, ``num_units``,
        ``num_reads``, ``num_writes``, ``memory_shape``, ``num_shifts``, ``output``).
    task : utils.generators.Task
        Gives ``input_size`` and ``output_size``.

    Returns
    -------
    Model
        For ``model="lstm"``, the attribute ``ntm_params`` holds the parameter count of the NTM
        the baseline is matched to, and ``lstm_units`` its number of units.

    Notes
    -----
    Initial values are drawn from :func:`ntm.lasagne.random.get_rng`; seed it first for
    reproducible models.
    """
    ntm_options = dict(controller=config.controller, num_units=config.num_units,
                       memory_shape=config.memory_shape, num_reads=config.num_reads,
                       num_writes=config.num_writes, num_shifts=config.num_shifts,
                       output=config.output,
                       learn_memory_init=getattr(config, "learn_memory_init", True))
    if config.model == "ntm":
        return build_ntm(task.input_size, task.output_size, **ntm_options)
    # The NTM is built only to be counted: its initial values come from a throwaway random
    # state so that the baseline's own initialisation does not depend on it.
    previous = lasagne_random.get_rng()
    lasagne_random.set_rng(np.random.RandomState(0))
    try:
        ntm_params = build_ntm(task.input_size, task.output_size, **ntm_options).num_params
    finally:
        lasagne_random.set_rng(previous)
    units = lstm_units_for(ntm_params, task.input_size, task.output_size)
    model = build_lstm_baseline(task.input_size, task.output_size, units, config.output,
                                config.memory_shape)
    model.ntm_params, model.lstm_units = ntm_params, units
    return model


# --------------------------------------------------------------------------------------------
# Loss and scores
# --------------------------------------------------------------------------------------------

def masked_loss(prediction, target, mask, output="bits"):
    """The training loss and the cross-entropy in bits per sequence, symbolically.

    Predictions are clipped to ``[1e-6, 1 - 1e-6]`` before the logarithms, so that a confident
    mistake costs a large but finite amount.

    Parameters
    ----------
    prediction, target : tensor3
        ``(batch, time, channels)``: probabilities and 0/1 (or one-hot) targets.
    mask : matrix
        ``(batch, time)``, 1 at the scored steps.
    output : {"bits", "categorical"}
        Binary cross-entropy summed over the channels, or categorical cross-entropy over them.

    Returns
    -------
    loss : scalar
        The cross-entropy (nats) per scored step, averaged over the scored steps of the batch.
    bits : scalar
        The cross-entropy in bits summed over each sequence's scored steps, averaged over the
        batch (the paper's "cost per sequence").
    """
    clipped = pt.clip(prediction, _PROBABILITY_CLIP, 1 - _PROBABILITY_CLIP)
    if output == "bits":
        per_step = objectives.binary_crossentropy(clipped, target).sum(axis=-1)
    else:
        per_step = objectives.categorical_crossentropy(clipped, target)
    total = (per_step * mask).sum()
    loss = total / pt.maximum(mask.sum(), 1)
    bits = total / pt.cast(prediction.shape[0], pytensor.config.floatX) / np.log(2.0)
    return loss, bits


def score(prediction, target, mask, output="bits"):
    """Per-sequence cross-entropy in bits and errors, in NumPy.

    Parameters
    ----------
    prediction, target : ndarray of shape ``(batch, time, channels)``
    mask : ndarray of shape ``(batch, time)``
    output : {"bits", "categorical"}
        For bits, the errors are the wrong bits once thresholded at 0.5
        (:func:`utils.metrics.bit_errors`); for categorical outputs, the scored steps whose most
        likely channel is not the target's.

    Returns
    -------
    bits, errors : ndarray of shape ``(batch,)``
    """
    if output == "bits":
        return (bits_per_sequence(prediction, target, mask, eps=_PROBABILITY_CLIP, reduce="none"),
                bit_errors(prediction, target, mask, reduce="none"))
    probability = np.clip(prediction, _PROBABILITY_CLIP, 1 - _PROBABILITY_CLIP)
    per_step = -(target * np.log2(probability)).sum(axis=-1)
    wrong = np.argmax(prediction, axis=-1) != np.argmax(target, axis=-1)
    return (per_step * mask).sum(axis=-1), (wrong * (mask > 0)).sum(axis=-1).astype(np.float64)


def _evaluate(predict, batches, output):
    """Mean bits and errors per sequence and the fraction of perfect sequences of batches."""
    bits, errors = [], []
    for x, y, mask in batches:
        sequence_bits, sequence_errors = score(predict(x), y, mask, output)
        bits.append(sequence_bits)
        errors.append(sequence_errors)
    bits, errors = np.concatenate(bits), np.concatenate(errors)
    return {"bits_per_seq": float(bits.mean()), "errors_per_seq": float(errors.mean()),
            "perfect": float(np.mean(errors == 0)), "sequences": int(bits.size)}


# --------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------

class StepResult(NamedTuple):
    """What one training step returns.

    Attributes
    ----------
    loss : float
        The loss of the batch (see :func:`masked_loss`).
    bits_per_seq : float
        Cross-entropy in bits per sequence of the batch.
    grad_norm : float
        Total norm of the gradients (after elementwise clipping, before norm clipping).
    updates_finite : bool
        Whether every updated parameter and optimizer state value came out finite.
    """

    loss: float
    bits_per_seq: float
    grad_norm: float
    updates_finite: bool = True

    @property
    def finite(self):
        """Whether the step was applied (loss, gradient norm and updated values finite)."""
        return bool(np.isfinite(self.loss) and np.isfinite(self.grad_norm)
                    and self.updates_finite)


class Trainer:
    """Compiled functions of a model: training step, predictions and the NTM's details.

    Each function is compiled once, when first needed. In the training step every update
    (parameters and optimizer state) is ``switch(isfinite(loss) & isfinite(grad_norm) &
    all(isfinite(new values)), new, old)``: a step with a non-finite loss or gradient, or one
    whose new parameters or optimizer state would not all be finite (a learning rate too large
    overflows them), leaves everything as it was, and the caller sees why in the returned
    :class:`StepResult`.

    Parameters
    ----------
    model : Model
    optimizer : str
        A key of :data:`LEARNING_RATES`.
    learning_rate : float, optional
        Default: the optimizer's in :data:`LEARNING_RATES`. Assignable later
        (:attr:`learning_rate`, e.g. by a schedule): the step of a new rate is compiled when
        first taken, on the same parameters and optimizer state. The rate is a constant of
        each step's graph, so a step at a rate is the step of a trainer made with it.
    max_norm : float
        Total-norm clipping of the gradients (0: off).
    grad_clip : float, optional
        Elementwise clipping of the gradients (None: off).
    spike_factor : float, optional
        Spike clipping (None: off): a step whose gradients' total norm :math:`n_t` exceeds
        :math:`\\kappa \\bar n_{t-1}`, ``spike_factor`` times the running average of the
        earlier steps' norms, is rescaled to that norm. The average keeps the norms as used,
        :math:`a_t = \\beta a_{t-1} + (1 - \\beta) \\min(n_t, \\kappa \\bar n_{t-1})`,
        :math:`\\bar n_t = a_t / (1 - \\beta^t)` with :math:`\\beta` =
        :data:`SPIKE_AVERAGE_DECAY` (the first step is never rescaled). Applied before
        ``max_norm``; ``a`` and ``t`` are optimizer state (checkpointed, resumed).
    focus_penalty : float, optional
        Focus penalty (None: off): the gradients are those of the loss plus
        :math:`\\lambda (\\bar H_{\\mathrm{read}} + \\bar H_{\\mathrm{write}})`, where
        :math:`\\bar H` is the mean over the batch, the steps and the heads of a kind of the
        entropy of a head's weighting, :math:`H(w_t) = -\\sum_i w_t[i] \\ln w_t[i]` (0 on one
        location, :math:`\\ln N` spread evenly), and :math:`\\lambda` = ``focus_penalty``. It
        pulls every head onto one location at every step, where the loss alone leaves a head
        with nothing to do spread over the memory (the README's copy results). The reported
        loss stays the task's. A trainer with it also has the plain loss's training step
        (``train_step(..., with_focus_penalty=False)``, compiled when first used), on the same
        parameters and optimizer state: a run can turn it on once the task is learned.
    mode : str, optional
        PyTensor mode (default: :data:`DEFAULT_MODE`).
    cache_key : JSON-serialisable, optional
        A complete description of the model's graph (e.g. its options and input and output
        sizes); given, the compiled functions are kept on disk under this key and a later
        process loads them instead of compiling (:mod:`utils.function_cache`).

    Attributes
    ----------
    params : list of SharedVariable
        Trainable parameters.
    all_params : list of SharedVariable
        Every parameter (trainable or not), what checkpoints hold.
    loaded : set of str
        Names of the functions (``train``, ``train_focus``, ``predict``, ``details``) loaded
        from the cache.
    """

    def __init__(self, model, optimizer="adam", learning_rate=None, max_norm=10.0,
                 grad_clip=None, mode=None, cache_key=None, spike_factor=None,
                 focus_penalty=None):
        if optimizer not in LEARNING_RATES:
            raise ValueError(f"optimizer must be one of {tuple(LEARNING_RATES)}, got {optimizer!r}")
        self.model = model
        self.optimizer = optimizer
        self.learning_rate = LEARNING_RATES[optimizer] if learning_rate is None else learning_rate
        self.max_norm = max_norm
        self.grad_clip = grad_clip
        if spike_factor is not None and not spike_factor > 0:
            raise ValueError(f"spike_factor must be > 0 or None, got {spike_factor!r}")
        self.spike_factor = spike_factor
        if focus_penalty is not None and not focus_penalty > 0:
            raise ValueError(f"focus_penalty must be > 0 or None, got {focus_penalty!r}")
        if focus_penalty is not None and model.l_ntm is None:
            raise ValueError("focus_penalty: the model has no NTM heads (LSTM baseline)")
        self.focus_penalty = focus_penalty
        self.mode = mode or DEFAULT_MODE
        self.cache_key = cache_key
        self.loaded = set()
        # Functions compiled later (e.g. details after a run) use the model's float type.
        self.floatX = pytensor.config.floatX
        self.params = layers.get_all_params(model.l_output, trainable=True)
        self.all_params = layers.get_all_params(model.l_output)
        names = [param.name for param in self.all_params]
        duplicates = sorted({name for name in names if names.count(name) > 1 or name is None},
                            key=str)
        if duplicates:
            raise ValueError(f"parameter names must be unique to be checkpointed; repeated or "
                             f"missing: {duplicates}")
        self.target_var = pt.tensor3("target")
        self.mask_var = pt.matrix("mask")
        # Added to the loss; NaN only when a test asks for a failing step (inject_nan).
        self._nan_offset = pytensor.shared(np.asarray(0.0, dtype=pytensor.config.floatX),
                                           name="debug_nan_offset")
        # The first plain loss's updates and outputs built: their optimizer state variables
        # are the trainer's, which every other step's graph moves too.
        self._updates = self._outputs = None
        # Updates and outputs, and compiled training steps, by (penalised, learning rate).
        self._step_graphs = {}
        self._train_fns = {}
        self._predict_fn = self._details_fn = None

    @property
    def learning_rate(self):
        """The step size of the next training steps (float > 0; assignable)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not (isinstance(value, (int, float, np.floating, np.integer))
                and np.isfinite(value) and value > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {value!r}")
        self._learning_rate = float(value)

    # graph ---------------------------------------------------------------------------------

    def _build_updates(self):
        """The plain loss's updates at the current rate, unless a plain step's were built
        already; their optimizer state variables are the trainer's."""
        if self._updates is None:
            with pytensor.config.change_flags(floatX=self.floatX):
                self._updates, self._outputs = self._make_updates(False, self.learning_rate)
            self._step_graphs[(False, self.learning_rate)] = (self._updates, self._outputs)

    def _step_graph(self, penalised, learning_rate):
        """The updates and outputs of the step ``(penalised, learning_rate)``, on the
        trainer's optimizer state."""
        key = (penalised, learning_rate)
        self._build_updates()
        if key not in self._step_graphs:
            with self._accelerated():
                updates, outputs = self._make_updates(penalised, learning_rate)
            # The update rule made state variables of its own for this graph: every step must
            # move the same moments (and spike average), so the first graph's replace them.
            # Both dictionaries list the parameters, then the state, in the same order.
            if len(updates) != len(self._updates):
                raise RuntimeError("the training steps' updates do not line up")
            replace = {}
            for own, shared in zip(updates, self._updates):
                if own.name != shared.name:
                    raise RuntimeError(f"the training steps' updates do not line up: "
                                       f"{own.name} against {shared.name}")
                if own is not shared:
                    replace[own] = shared
            values = clone_replace(list(updates.values()) + list(outputs), replace)
            self._step_graphs[key] = (OrderedDict(zip(self._updates, values[:len(updates)])),
                                      values[len(updates):])
        return self._step_graphs[key]

    def _make_updates(self, focus_penalty, learning_rate):
        """The updates of one training step and its outputs ``[loss, bits, grad_norm]``, with
        or without the focus penalty in the objective, at ``learning_rate``."""
        prediction = layers.get_output(self.model.l_output)
        loss, bits = masked_loss(prediction, self.target_var, self.mask_var, self.model.output)
        loss = loss + self._nan_offset
        objective = loss + self._focus_penalty_term() if focus_penalty else loss
        grads = pytensor.grad(objective, self.params)
        if self.grad_clip is not None:
            grads = [pt.clip(grad, -self.grad_clip, self.grad_clip) for grad in grads]
        # One sum over all elements (as total_norm_constraint): a sum of per-gradient sums is
        # rewritten into one elementwise add of as many inputs, which FAST_COMPILE cannot run
        # beyond 32.
        grad_norm = pt.sqrt(pt.sum(pt.sqr(pt.concatenate([pt.flatten(g) for g in grads]))))
        dtype = np.dtype(pytensor.config.floatX).type
        spike_updates, clipped_norm = OrderedDict(), grad_norm
        if self.spike_factor is not None:
            grads, clipped_norm, spike_updates = self._clip_spikes(grads, grad_norm, dtype)
        if self.max_norm > 0:
            # As total_norm_constraint: rescale all gradients together to a norm <= max_norm.
            scale = (pt.clip(clipped_norm, 0, dtype(self.max_norm))
                     / (clipped_norm + dtype(1e-7)))
            grads = [grad * scale for grad in grads]
        rule = {"graves_rmsprop": graves_rmsprop, "adam": lasagne_updates.adam,
                "rmsprop": lasagne_updates.rmsprop}[self.optimizer]
        raw = rule(grads, self.params, learning_rate=learning_rate)
        raw.update(spike_updates)
        # One reduction per value, stacked: no elementwise operation of as many inputs.
        updates_finite = pt.all(pt.stack([pt.all(pt.isfinite(new)) for new in raw.values()]))
        finite = pt.isfinite(loss) & pt.isfinite(grad_norm) & updates_finite
        updates = OrderedDict((var, pt.switch(finite, new, var)) for var, new in raw.items())
        return updates, [loss, bits, grad_norm, updates_finite]

    def _focus_penalty_term(self):
        """:math:`\\lambda (\\bar H_{\\mathrm{read}} + \\bar H_{\\mathrm{write}})` (see the class
        docstring), from the same scan as the prediction (PyTensor merges the two)."""
        details = layers.get_output(self.model.l_ntm, get_details=True)
        dtype = np.dtype(pytensor.config.floatX).type
        entropies = []
        for weights, heads in ((details[3], self.model.l_ntm.write_heads),
                               (details[4], self.model.l_ntm.read_heads)):
            if len(heads):  # (batch, time, heads, N); a mean over no heads would be NaN
                # w ln w -> 0 as w -> 0; the floor keeps the log finite at exact zeros.
                safe = pt.maximum(weights, dtype(1e-12))
                entropies.append(-(weights * pt.log(safe)).sum(axis=-1).mean())
        return dtype(self.focus_penalty) * sum(entropies)

    def _clip_spikes(self, grads, grad_norm, dtype):
        """Rescale a step whose norm exceeds ``spike_factor`` times the running average.

        Returns the gradients, their norm after rescaling and the updates of the average.
        """
        average = pytensor.shared(dtype(0.0), name=_SPIKE_STATE + "grad_norm_average")
        steps = pytensor.shared(dtype(0.0), name=_SPIKE_STATE + "steps")
        decay = dtype(SPIKE_AVERAGE_DECAY)
        # Bias-corrected like Adam's moments; no limit before the first step's norm is known.
        limit = dtype(self.spike_factor) * average / (dtype(1) - decay ** pt.maximum(steps, 1))
        spike = (steps > 0) & (grad_norm > limit)
        # Exactly 1 when no spike, so that a run without spikes is the run without the option.
        scale = pt.switch(spike, limit / grad_norm, dtype(1))
        kept_norm = pt.switch(spike, limit, grad_norm)
        updates = OrderedDict([(average, decay * average + (dtype(1) - decay) * kept_norm),
                               (steps, steps + dtype(1))])
        return [grad * scale for grad in grads], kept_norm, updates

    @property
    def optimizer_state(self):
        """The optimizer's state variables (named ``<param>.<rule>_*``), in a fixed order."""
        self._build_updates()
        params = set(self.params)
        return [var for var in self._updates if var not in params]

    # compiled functions --------------------------------------------------------------------

    def _penalised(self, with_focus_penalty):
        """Whether a step asked ``with_focus_penalty`` takes the penalty's gradients."""
        return bool(with_focus_penalty) and self.focus_penalty is not None

    def _step_key(self, with_focus_penalty):
        return self._penalised(with_focus_penalty), self.learning_rate

    def is_compiled(self, with_focus_penalty=True):
        """Whether the training step :meth:`train_step` would take (at the current learning
        rate) is compiled."""
        return self._step_key(with_focus_penalty) in self._train_fns

    def compile(self, with_focus_penalty=True):
        """Compile a training step at the current learning rate now (otherwise it is compiled
        when first taken).

        The steps of other learning rates are dropped (a schedule does not go back; one taken
        again is compiled again, or loaded from the cache).

        Parameters
        ----------
        with_focus_penalty : bool
            With a ``focus_penalty``, compile the step with it (True) or the plain loss's.

        Returns
        -------
        float
            Seconds spent (0 when already compiled).
        """
        key = penalised, learning_rate = self._step_key(with_focus_penalty)
        if key in self._train_fns:
            return 0.0
        started = time.perf_counter()
        # Their intermediate storage is kept between calls: free it.
        self._train_fns = {other: function for other, function in self._train_fns.items()
                           if other[1] == learning_rate}
        updates, outputs = self._step_graph(penalised, learning_rate)
        options = [self.optimizer, learning_rate, self.max_norm, self.grad_clip] \
            + ([] if self.spike_factor is None else [self.spike_factor])
        if penalised:
            name = "train_focus"
            options = options + [["focus_penalty", self.focus_penalty]]
        else:  # the graph and cache key of a trainer without the penalty
            name = "train"
        self.loaded.discard(name)  # an earlier rate's step may have been loaded
        self._train_fns[key] = self._function(
            name, [self.model.l_input.input_var, self.target_var, self.mask_var], outputs,
            updates=updates, shared=self.all_params + self.optimizer_state + [self._nan_offset],
            options=options)
        return time.perf_counter() - started

    @contextmanager
    def _accelerated(self):
        """Graphs built and compiled inside are the model's float type, with the fused ops
        and the accelerated mode of :mod:`ntm.accel` where the trainer's mode allows them;
        yields the mode to compile with."""
        with pytensor.config.change_flags(floatX=self.floatX), accelerated(self.mode) as mode:
            yield mode

    def _function(self, name, inputs, outputs, shared, updates=None, options=None):
        """Compile in the accelerated mode (:meth:`_accelerated`), or load from the cache with
        a cache_key; the function keeps its intermediate storage between calls."""
        with self._accelerated() as mode:
            if self.cache_key is None:
                return pytensor.function(inputs, outputs, updates=updates, mode=mode, name=name)
            function, loaded = cached_function(
                inputs, outputs, updates=updates, mode=mode, name=name,
                key=[self.cache_key, options], shared=shared, sources=[__file__])
        if loaded:
            self.loaded.add(name)
        return function

    def train_step(self, x, y, mask, with_focus_penalty=True):
        """One update on a batch.

        Parameters
        ----------
        x, y : ndarray of shape ``(batch, time, channels)``
        mask : ndarray of shape ``(batch, time)``
        with_focus_penalty : bool
            With a ``focus_penalty``, whether this step's gradients include it (False: the
            plain loss's, as without the option). Ignored without one.

        Returns
        -------
        StepResult
            When not :attr:`StepResult.finite`, nothing was changed.
        """
        self.compile(with_focus_penalty)
        loss, bits, grad_norm, updates_finite = \
            self._train_fns[self._step_key(with_focus_penalty)](x, y, mask)
        return StepResult(float(loss), float(bits), float(grad_norm), bool(updates_finite))

    def predict(self, x):
        """The predictions for a batch of input sequences, ``(batch, time, output_size)``."""
        if self._predict_fn is None:
            with self._accelerated():
                prediction = layers.get_output(self.model.l_output)
            self._predict_fn = self._function("predict", [self.model.l_input.input_var],
                                              prediction, shared=self.all_params)
        return self._predict_fn(x)

    def details(self, x):
        """The NTM's ``[memory, hidden, state, write_weights, read_weights]`` for a batch.

        Raises
        ------
        ValueError
            For a model without NTM (the LSTM baseline).
        """
        if self.model.l_ntm is None:
            raise ValueError("details: the model has no NTM layer (LSTM baseline)")
        if self._details_fn is None:
            with self._accelerated():
                details = layers.get_output(self.model.l_ntm, get_details=True)
            self._details_fn = self._function("details", [self.model.l_input.input_var],
                                              details, shared=self.all_params)
        return self._details_fn(x)

    def inject_nan(self, enabled=True):
        """Make the next training steps' loss NaN (to test the guard), or stop doing so."""
        self._nan_offset.set_value(np.asarray(np.nan if enabled else 0.0,
                                              dtype=self._nan_offset.dtype))

    def reset(self, parameter_values):
        """Start afresh: set the parameters, zero the optimizer state, clear the NaN injection.

        Parameters
        ----------
        parameter_values : dict
            ``{name: array}`` of every parameter, e.g. :meth:`parameter_values` taken right
            after the model was built.
        """
        self.set_parameter_values(parameter_values)
        # Every update rule here starts its state (moments, averages, step counter) at zero.
        for var in self.optimizer_state:
            var.set_value(np.zeros_like(var.get_value(borrow=True)))
        self.inject_nan(False)

    # values --------------------------------------------------------------------------------

    def parameter_values(self):
        """``{name: array}`` of every parameter."""
        return OrderedDict((param.name, param.get_value()) for param in self.all_params)

    def optimizer_values(self):
        """``{name: array}`` of the optimizer state."""
        return OrderedDict((var.name, var.get_value()) for var in self.optimizer_state)

    @staticmethod
    def _assign(variables, values, what):
        expected = {var.name: var for var in variables}
        missing = sorted(set(expected) - set(values))
        unexpected = sorted(set(values) - set(expected))
        if missing or unexpected:
            raise ValueError(f"the checkpoint's {what} do not fit this model: missing "
                             f"{missing or 'none'}, unexpected {unexpected or 'none'}")
        for name, var in expected.items():
            value = np.asarray(values[name])
            shape = var.get_value(borrow=True).shape
            if value.shape != shape:
                raise ValueError(f"the checkpoint's {what} {name!r} has shape {value.shape}, "
                                 f"the model's has {shape}")
        for name, var in expected.items():
            var.set_value(np.asarray(values[name]).astype(var.dtype))

    def set_parameter_values(self, values):
        """Set every parameter from ``{name: array}`` (names and shapes must match)."""
        self._assign(self.all_params, values, "parameters")

    def set_optimizer_values(self, values):
        """Set the optimizer state from ``{name: array}`` (names and shapes must match)."""
        self._assign(self.optimizer_state, values, "optimizer state")


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

def best_checkpoint_path(path):
    """Where ``--keep-best`` with ``--save PATH.npz`` writes the best parameters:
    ``PATH-best.npz``."""
    return checkpoint_paths(path)[0][:-4] + "-best.npz"


def average_checkpoint_path(path):
    """Where ``--average-after`` with ``--save PATH.npz`` writes the averaged parameters:
    ``PATH-average.npz``."""
    return checkpoint_paths(path)[0][:-4] + "-average.npz"


def curve_path(plot_path):
    """Where ``--plot FILE.png`` writes the learning curve: ``FILE-curve.png``."""
    root, extension = os.path.splitext(plot_path)
    return f"{root}-curve{extension}"


def save_checkpoint(path, trainer, info, best_params=None, average_sums=None):
    """Commit a checkpoint, ``PATH.npz``, in one step (and its readable copy ``PATH.json``).

    The file format, its atomic commit and the migrations of earlier formats are
    :mod:`utils.checkpoints`'.

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
    utils.checkpoints.CheckpointError
        For non-finite values, or (:class:`~utils.checkpoints.CheckpointWriteError`) a write
        the disk refused; the previous checkpoint at ``path`` is then kept.
    """
    arrays = OrderedDict()
    for name, value in trainer.parameter_values().items():
        arrays[f"params/{name}"] = value
    for name, value in trainer.optimizer_values().items():
        arrays[f"optimizer/{name}"] = value
    for name, value in (best_params or {}).items():
        arrays[f"best/{name}"] = value
    for name, value in (average_sums or {}).items():
        arrays[f"average/{name}"] = value
    arrays["iteration"] = np.asarray(info["iteration"])
    write_checkpoint(path, arrays, info)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`, or by an earlier version.

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
    utils.checkpoints.CheckpointError
        (a ValueError) If the file is missing, damaged or not a checkpoint, with a one-line
        message naming it.
    """
    arrays, info = read_checkpoint(path)
    params = {name[len("params/"):]: value for name, value in arrays.items()
              if name.startswith("params/")}
    optimizer = {name[len("optimizer/"):]: value for name, value in arrays.items()
                 if name.startswith("optimizer/")}
    if not params:
        raise CheckpointError(f"{checkpoint_paths(path)[0]}: holds no parameters")
    return params, optimizer, info


def load_best_parameters(path):
    """The ``--keep-best`` parameters stored in a checkpoint: ``{name: array}``, maybe empty."""
    with np.load(checkpoint_paths(path)[0]) as data:
        return {name[len("best/"):]: data[name] for name in data.files
                if name.startswith("best/")}


def load_average_sums(path):
    """The ``--average-after`` running sums stored in a checkpoint: ``{name: array}``, maybe
    empty."""
    with np.load(checkpoint_paths(path)[0]) as data:
        return {name[len("average/"):]: data[name] for name in data.files
                if name.startswith("average/")}


class _Sizes(NamedTuple):
    """The input and output sizes a checkpoint's network was built for (a task's stand-in)."""

    input_size: int
    output_size: int


def parameters_for_memory_shape(params, info, memory_shape):
    r"""A checkpoint's parameters for the same model with another number of memory locations.

    The memory's size :math:`N` is not a dimension of the trained parameters when the initial
    memory :math:`M_0` and the heads' initial weightings :math:`w_0` are constants that do not
    depend on it: ``Constant(c)`` gives :math:`M_0 = c` at every location and ``OneHot()``
    gives :math:`w_0 = (1, 0, \dots, 0)` for any :math:`N`, and the addressing (softmax over
    the locations, circular shift, sharpening) is defined for any :math:`N`. A model trained
    with a memory of :math:`N` locations then runs unchanged with :math:`N'` locations: every
    parameter whose shape does not involve :math:`N` is kept, every one whose shape does is
    given its initial value at :math:`N'`. That is refused when such a parameter was trained
    (``--learn-memory-init``: a learned :math:`M_0` of :math:`N \times M`) or does not hold
    its initial value, and when the location size :math:`M` changes (the keys, the erase and
    add vectors and the reads into the controller have :math:`M` entries).

    Parameters
    ----------
    params : dict
        ``{name: array}`` of the checkpoint's parameters (:func:`load_checkpoint`).
    info : dict
        The checkpoint's JSON document.
    memory_shape : tuple of int
        ``(N', M)``: the new number of locations, and the checkpoint's location size.

    Returns
    -------
    dict
        ``{name: array}`` of the parameters of the model with memory ``memory_shape``.

    Raises
    ------
    ValueError
        If the model's parameters depend on :math:`N` or :math:`M` changes; the message names
        the parameters.
    """
    saved = argparse.Namespace(**_saved_config(info))
    old_shape = tuple(int(size) for size in saved.memory_shape)
    new_shape = tuple(int(size) for size in memory_shape)
    if len(new_shape) != 2 or min(new_shape) < 1:
        raise ValueError(f"memory_shape must be two positive integers (N, M), got {memory_shape}")
    if new_shape == old_shape:
        return dict(params)
    if saved.model != "ntm":
        raise ValueError("the LSTM baseline has no memory to resize")
    if new_shape[1] != old_shape[1]:
        raise ValueError(f"the location size M is a dimension of the trained parameters (the "
                         f"keys, erase and add vectors, reads): the checkpoint's is "
                         f"{old_shape[1]}, got {new_shape[1]}")
    if saved.num_shifts > new_shape[0]:
        raise ValueError(f"{saved.num_shifts} shifts exceed the {new_shape[0]} memory locations")
    sizes = _Sizes(int(info["task"]["input_size"]), int(info["task"]["output_size"]))
    # Both networks are built from the saved options, in the saved float type, with a throwaway
    # random state: only the initial values of the parameters that involve N are used.
    models = {}
    previous = lasagne_random.get_rng()
    try:
        with pytensor.config.change_flags(floatX=getattr(saved, "floatX", "float32")):
            for shape in (old_shape, new_shape):
                lasagne_random.set_rng(np.random.RandomState(0))
                config = argparse.Namespace(**dict(vars(saved), memory_shape=shape))
                model = build_model(config, sizes)
                models[shape] = {param.name: param for param in
                                 layers.get_all_params(model.l_output)}
    finally:
        lasagne_random.set_rng(previous)
    trainable = {param.name for param in layers.get_all_params(model.l_output, trainable=True)}
    resized, depends = {}, []
    for name, param in models[new_shape].items():
        old_param = models[old_shape][name]
        initial = old_param.get_value()
        if initial.shape == param.get_value(borrow=True).shape:
            resized[name] = params[name]
            continue
        value = np.asarray(params[name])
        if name in trainable:
            depends.append(f"{name} (learned, {' x '.join(map(str, value.shape))})")
        elif value.shape != initial.shape or not np.array_equal(value.astype(initial.dtype),
                                                                 initial):
            depends.append(f"{name} ({' x '.join(map(str, value.shape))}, not its initial "
                           f"value)")
        else:
            resized[name] = param.get_value()
    if depends:
        raise ValueError(f"the model's parameters depend on the number of memory locations N "
                         f"({old_shape[0]}): {', '.join(depends)}; only a model whose initial "
                         f"memory and weightings are constants (--no-learn-memory-init) runs "
                         f"with another N")
    return resized


def load_model(path, task, best=False, memory_shape=None):
    """The network a checkpoint describes, built for ``task`` and set to its parameters.

    For using a trained model from Python (its predictions, its heads' weightings), e.g.
    ``model, info = load_model("models/copy.npz", CopyTask(batch_size=16))``, then
    ``layers.get_output(model.l_output, deterministic=True)``.

    Parameters
    ----------
    path : str
        ``PATH.npz`` of a checkpoint written by the example scripts.
    task : utils.generators.Task
        The task the model is used on; its input and output sizes must be the checkpoint's.
    best : bool
        Take the ``--keep-best`` parameters stored in the checkpoint instead of the last ones.
    memory_shape : tuple of int, optional
        Build the model with a memory of this ``(N, M)`` instead of the checkpoint's: another
        number of locations N, e.g. to copy longer sequences than fit the trained memory (see
        :func:`parameters_for_memory_shape`).

    Returns
    -------
    model : Model
    info : dict
        The checkpoint's JSON document (options, history, commands); with ``memory_shape``,
        its ``config`` gives the new shape.

    Raises
    ------
    ValueError
        If the checkpoint cannot be read, was trained for other input or output sizes, holds
        no best parameters while ``best`` is asked for, or its parameters depend on the number
        of memory locations while another is asked for.
    """
    params, _, info = load_checkpoint(path)
    if best:
        params = load_best_parameters(path)
        if not params:
            raise ValueError(f"best: {path} holds no best parameters (trained without "
                             "--keep-best)")
    mismatch = _task_mismatch(info, task)
    if mismatch:
        raise ValueError(f"task: {path} does not fit: {mismatch}")
    if memory_shape is not None:
        try:
            params = parameters_for_memory_shape(params, info, memory_shape)
        except ValueError as error:
            raise ValueError(f"memory_shape: {path}: {error}") from None
        info = dict(info, config=dict(info["config"], memory_shape=list(memory_shape)))
    model = build_model(argparse.Namespace(**_saved_config(info)), task)
    Trainer._assign(layers.get_all_params(model.l_output), params, "parameters")
    return model, info


def _loaded_for_memory_shape(parser, config, loaded):
    """A loaded checkpoint with its parameters for the --memory-shape given, when the model's
    parameters do not depend on N (see :func:`parameters_for_memory_shape`)."""
    params, optimizer, info = loaded
    try:
        params = parameters_for_memory_shape(params, info, config.memory_shape)
    except ValueError as error:
        parser.error(f"--memory-shape {_format(config.memory_shape)}: --load {config.load}: "
                     f"{error}")
    info = dict(info, config=dict(info["config"], memory_shape=list(config.memory_shape)))
    return params, optimizer, info


def _saved_config(info):
    """A checkpoint's options, with the values of options it predates."""
    saved = dict(info.get("config", {}))
    # Checkpoints from before --learn-memory-init existed always trained the memory's M_0.
    saved.setdefault("learn_memory_init", True)
    # Nor did those from before --clip-spikes clip spikes (the copy task now does by default).
    saved.setdefault("clip_spikes", None)
    saved.setdefault("focus_penalty", None)
    saved.setdefault("focus_penalty_after", 0)
    saved.setdefault("learning_rate_schedule", [])
    saved.setdefault("average_after", None)
    return saved


def _merge_checkpoint_config(parser, config, explicit, info, resume):
    """Take from the checkpoint the options the command line left out; refuse conflicts."""
    saved = _saved_config(info)
    for task_option in parser.task_options:
        if task_option.earlier_value is not None:
            saved.setdefault(task_option.dest, task_option.earlier_value)
    option = "--resume" if resume else "--load"
    model_options = _model_options(parser)
    # The task too: a loaded model is evaluated and drawn on the task it learned (say bAbI's
    # task 2) unless the command line names another.
    taken = (model_options + tuple(o.dest for o in parser.task_options)
             + (_TRAINING_OPTIONS if resume else ()))
    conflicts = []
    for dest in model_options + (("optimizer",) if resume else ()):
        if dest in saved and dest in explicit and _normalise(getattr(config, dest)) != \
                _normalise(saved[dest]):
            conflicts.append(f"{_option_name(dest)} {_format(getattr(config, dest))} "
                             f"(checkpoint: {_format(saved[dest])})")
    # The output kind belongs to the script, not to the command line.
    if saved.get("output", config.output) != config.output:
        conflicts.append(f"{config.output} outputs (checkpoint: {saved['output']})")
    if conflicts:
        parser.error(f"{option} {getattr(config, 'resume' if resume else 'load')}: the "
                     f"checkpoint does not match this model: {'; '.join(conflicts)}")
    for dest in taken:
        if dest in saved and dest not in explicit:
            value = saved[dest]
            setattr(config, dest, list(value) if isinstance(value, list) else value)


def _format_schedule(schedule):
    return ",".join(f"{after}:{rate:g}" for after, rate in schedule)


def _task_description(task):
    return {"class": type(task).__name__, "input_size": task.input_size,
            "output_size": task.output_size}


def _task_mismatch(info, task):
    """Why a checkpoint's network does not fit ``task`` (its channels), or None."""
    saved = info.get("task", {})
    here = _task_description(task)
    if [saved.get("input_size"), saved.get("output_size")] == [here["input_size"],
                                                                here["output_size"]]:
        return None
    return (f"it reads {saved.get('input_size')} and writes {saved.get('output_size')} "
            f"channels ({saved.get('class')}), this task {here['input_size']} and "
            f"{here['output_size']} ({here['class']})")


def _check_checkpoint_task(parser, config, task, info):
    """Refuse a checkpoint whose network reads or writes another number of channels."""
    mismatch = _task_mismatch(info, task)
    if mismatch:
        option = "--resume" if config.resume else "--load"
        parser.error(f"{option} {config.resume or config.load}: the checkpoint does not match "
                     f"this model: {mismatch}")


def _normalise(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _format(value):
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


# --------------------------------------------------------------------------------------------
# Progress, log
# --------------------------------------------------------------------------------------------

def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class _Progress:
    """A one-line progress bar on a terminal; plain lines every ``--log-every`` otherwise."""

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
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class _Log:
    """Rows of :data:`LOG_COLUMNS` to a CSV or JSON-lines file, flushed after each row."""

    def __init__(self, path, append):
        self.path = path
        self.json = path.endswith(".jsonl")
        exists = append and os.path.exists(path) and os.path.getsize(path) > 0
        self.columns = LOG_COLUMNS
        if exists and not self.json:
            # A CSV begun by an earlier version keeps its own columns.
            with open(path, encoding="utf-8", newline="") as stream:
                header = next(csv.reader(stream), None)
            if header and set(header) <= set(LOG_COLUMNS):
                self.columns = tuple(header)
        self.stream = open(path, "a" if exists else "w", encoding="utf-8", newline="")
        self.writer = None if self.json else csv.writer(self.stream)
        if not self.json and not exists:
            self.writer.writerow(self.columns)

    def write(self, row):
        if self.json:
            self.stream.write(json.dumps({column: row.get(column) for column in self.columns})
                              + "\n")
        else:
            self.writer.writerow(["" if row.get(column) is None else row[column]
                                  for column in self.columns])
        self.stream.flush()

    def close(self):
        self.stream.close()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

class TrainingStopped(RuntimeError):
    """Training stopped on a non-finite loss or gradient (the step was not applied)."""


@dataclass
class RunResult:
    """What :func:`run` did.

    Attributes
    ----------
    exit_code : int
        0 on success, 1 when training stopped on a non-finite step, 2 when a checkpoint could
        not be written (a full disk), 128 + the signal's number when interrupted (130 for
        Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    config : argparse.Namespace
        The options in effect (after merging a checkpoint's).
    model : Model
    trainer : Trainer
    iteration : int
        Iterations completed (and kept).
    history : list of dict
        The logged rows (see :data:`LOG_COLUMNS`).
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
    config: argparse.Namespace
    model: Model
    trainer: Trainer
    iteration: int
    history: list = field(default_factory=list)
    evaluation: list = field(default_factory=list)
    message: str = ""
    best: Optional[dict] = None
    averaged: Optional[dict] = None


def _make_task(parser, make_task, config, batch_size, seed):
    try:
        return make_task(config, batch_size=batch_size, seed=seed, dtype=pytensor.config.floatX)
    except ValueError as error:
        parser.error(_with_option_names(str(error), parser))


def _eval_params(config, task, value, eval_params):
    return eval_params(value, task) if eval_params else {config.eval_param: value}


def _check_episode_params(parser, make_task, config, eval_params):
    """Check --plot-params and --eval-lengths on a throwaway task, before any compilation."""
    probe = _make_task(parser, make_task, config, 1, 0)
    unknown = sorted(set(config.plot_params) - set(probe.param_names))
    if unknown:
        parser.error(f"--plot-params: unknown parameter(s) {unknown}; this task has "
                     f"{list(probe.param_names)}")
    checks = [("--plot-params", config.plot_params)]
    checks += [("--eval-lengths", _eval_params(config, probe, value, eval_params))
               for value in (config.eval_lengths or ())]
    for option, params in checks:
        try:
            probe.sample_params(**params)
        except ValueError as error:
            parser.error(f"{option}: {error}")


_reusable_models = None


def reuse_compiled_models(enabled=True):
    """Keep the models :func:`run` builds, with their compiled functions, for later runs.

    Compiling the NTM's training function takes seconds to minutes, the same for a tiny model
    as for a large one. When enabled, a later :func:`run` in the same process whose network,
    optimizer, mode and seed are those of an earlier one takes that model back, resets it to
    its initial parameters and a zero optimizer state, and skips the compilation: the run is
    the same as with a freshly built model. Useful in notebooks and test suites.

    Parameters
    ----------
    enabled : bool
        Start keeping models (True) or forget them and stop (False).
    """
    global _reusable_models
    _reusable_models = {} if enabled else None


def _graph_key(config, task, mode):
    """What decides a model's graph (its options, sizes, mode and float type)."""
    options = ("model", "output", "controller", "num_units", "num_reads", "num_writes",
               "memory_shape", "num_shifts", "learn_memory_init", "optimizer", "max_norm",
               "grad_clip")
    values = [_normalise(getattr(config, name)) for name in options]
    if config.clip_spikes is not None:  # keys of runs without it unchanged
        values.append(["clip_spikes", config.clip_spikes])
    # Nor the learning rate or focus penalty: the trainer adds them to the keys of its
    # training steps, so that a run that changes them shares the cache entries of runs that
    # start with them.
    return [values, task.input_size, task.output_size, mode, pytensor.config.floatX]


def _model_key(config, task, mode):
    """What decides a model's graph and initial values, and its trainer's functions (those
    of other learning rates are compiled when needed)."""
    return json.dumps([_graph_key(config, task, mode), config.seed, config.focus_penalty])


def _model_and_trainer(config, task, mode):
    """Build the model and its trainer, or take back a kept one (reuse_compiled_models)."""
    key = _model_key(config, task, mode)
    if _reusable_models is not None and key in _reusable_models:
        model, trainer, initial = _reusable_models[key]
        trainer.reset(initial)
        trainer.learning_rate = config.learning_rate
        return model, trainer
    previous_rng = lasagne_random.get_rng()
    lasagne_random.set_rng(np.random.RandomState(config.seed))
    try:
        model = build_model(config, task)
    finally:
        lasagne_random.set_rng(previous_rng)
    trainer = Trainer(model, config.optimizer, config.learning_rate, config.max_norm,
                      config.grad_clip, mode, cache_key=_graph_key(config, task, mode),
                      spike_factor=config.clip_spikes,
                      focus_penalty=config.focus_penalty)
    if _reusable_models is not None:
        _reusable_models[key] = (model, trainer, trainer.parameter_values())
    return model, trainer


def _describe_model(model, config):
    if model.l_ntm is None:
        return (f"LSTM baseline: {model.lstm_units} units, {model.num_params:,} parameters "
                f"(the NTM with these options: {model.ntm_params:,} parameters)")
    N, M = model.memory_shape
    return (f"NTM: {config.controller} controller of {config.num_units} units, memory {N}x{M}, "
            f"{config.num_reads} read and {config.num_writes} write head(s), "
            f"{model.num_params:,} parameters")


def run(parser, make_task, argv=None, markers=None, eval_params=None, reference=None):
    """Parse the command line and train, evaluate, plot and checkpoint as it says.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        From :func:`make_parser`, with the script's defaults.
    make_task : callable
        ``make_task(config, batch_size=..., seed=..., dtype=...)`` returns a task of
        :mod:`utils.generators` built from the task options in ``config``. Its attribute
        ``make_validation_task``, if it has one, is called the same way to build the task the
        validation batches are drawn from (by default ``make_task`` itself).
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).
    markers : callable, optional
        ``markers(task)`` returns the markers of the heat maps (see
        :class:`utils.visualization.Dashboard`), e.g. ``[delimiter_marker()]``.
    eval_params : callable, optional
        ``eval_params(value, task)`` returns the episode parameters for one ``--eval-lengths``
        value; by default ``{config.eval_param: value}``.
    reference : callable, optional
        ``reference(task, x, y, mask)`` returns the bits per sequence of a reference predictor
        (e.g. the Bayes-optimal one of dynamic n-grams), shown in the evaluation table.

    Returns
    -------
    RunResult

    Raises
    ------
    SystemExit
        With status 2 for bad options (the message names the option), as argparse does, and
        for a --save whose checkpoint another run holds (its lock) or that would replace
        another run's without --overwrite; with 128 + the signal's number for Ctrl-C, SIGTERM
        or SIGHUP before or after training (in training, the run saves and returns).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config, explicit = parse_config(parser, argv)
    checkpoint = config.resume or config.load
    loaded, notes = None, []
    if checkpoint:
        _check_config(parser, config)  # the checkpoint must exist before it is read
        try:
            loaded = load_checkpoint(checkpoint)
        except ValueError as error:
            parser.error(f"{'--resume' if config.resume else '--load'}: {error}")
        if config.load and "memory_shape" in explicit:
            loaded = _loaded_for_memory_shape(parser, config, loaded)
        _merge_checkpoint_config(parser, config, explicit, loaded[2], resume=bool(config.resume))
    if "learning_rate" in explicit and "learning_rate_schedule" not in explicit and \
            config.learning_rate_schedule:
        # A schedule (the script's, or a resumed checkpoint's) belongs with the rate it starts
        # from: a rate given alone replaces the whole plan and is kept throughout.
        owner = "the checkpoint's" if config.resume else "this script's"
        notes.append(f"--learning-rate {config.learning_rate:g} given: {owner} "
                     f"--learning-rate-schedule {_format_schedule(config.learning_rate_schedule)}"
                     f" is not used")
        config.learning_rate_schedule = []
    if config.keep_best and "average_after" not in explicit and not config.resume and \
            config.average_after is not None:
        # Both pick the parameters the run ends with: the one asked for wins.
        notes.append(f"--keep-best given: this script's --average-after "
                     f"{config.average_after} is not used")
        config.average_after = None
    if config.learning_rate is None:
        config.learning_rate = LEARNING_RATES.get(config.optimizer)
    if config.model == "lstm" and "focus_penalty" not in explicit:
        config.focus_penalty = None  # a script's default penalty is for its NTM's heads
    _check_config(parser, config)
    for option in ("clip_spikes", "focus_penalty"):
        if getattr(config, option) == 0:
            setattr(config, option, None)  # one value for "off": the graph of no option
    if config.focus_penalty is None and config.focus_penalty_after and \
            "focus_penalty_after" in explicit:
        parser.error("--focus-penalty-after: there is no --focus-penalty to turn on")
    mode = _resolve_mode(parser, config)
    # The model, its functions and the data share one float type, set for this run only.
    with pytensor.config.change_flags(floatX=config.floatX):
        return _run_checked(parser, make_task, argv, config, loaded, checkpoint, mode, markers,
                            eval_params, reference, notes)


def _check_memory(parser, make_task, config):
    """Refuse, before anything is built, an NTM whose memory's states over a training step
    cannot fit in the memory available (:func:`utils.resources.scan_memory_bytes`)."""
    available = resources.available_memory_bytes()
    if config.model != "ntm" or available is None:
        return
    probe = _make_task(parser, make_task, config, 1, 0)
    # The longest of a few episodes: the lengths are drawn, the bound needs only their scale.
    steps = max(probe.sample_with_mask()[0].shape[1] for _ in range(16))
    itemsize = np.dtype(config.floatX).itemsize
    needed = resources.scan_memory_bytes(config.memory_shape, config.batch_size, steps,
                                         itemsize)
    if needed > available:
        N, M = config.memory_shape
        parser.error(f"--memory-shape {N} {M}: a training step needs at least "
                     f"{resources.format_bytes(needed)} for the memory's states (2 x {N} x {M} x "
                     f"{config.batch_size} sequences (--batch-size) x {steps} steps x {itemsize} "
                     f"bytes: the scan's and its gradient's), more than the "
                     f"{resources.format_bytes(available)} available; choose a smaller "
                     f"--memory-shape or --batch-size, or shorter sequences")


def _same_file(first, second):
    return os.path.abspath(checkpoint_paths(first)[0]) == \
        os.path.abspath(checkpoint_paths(second)[0])


def _claim_checkpoint(parser, config, command_line):
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
                parser.error(f"{_option_name(option)} {path}: cannot write in {directory} "
                             f"({error.strerror or error})")
    if not config.save:
        return None, []
    save = config.save
    # The lock first: a run writing the checkpoint now is what to name, before its files.
    lock = CheckpointLock(save, command_line)
    try:
        lock.acquire()
    except CheckpointLocked as error:
        parser.error(f"--save {save}: {error}")
    except OSError as error:
        parser.error(f"--save {save}: cannot create its lock {lock.path} "
                     f"({error.strerror or error})")
    try:
        continued = config.resume and _same_file(config.resume, save)
        if not continued and not config.overwrite and \
                any(os.path.exists(name) for name in checkpoint_paths(save)):
            whose = " (the one --load reads)" if config.load and _same_file(config.load, save) \
                else ""
            parser.error(f"--save {save}: a checkpoint is there already{whose}; give "
                         f"--overwrite to replace it, or --resume {save} to continue its run")
        notes = lock.notes + recover([save, best_checkpoint_path(save),
                                      average_checkpoint_path(save)])
    except CheckpointError as error:
        lock.release()
        parser.error(f"--save {save}: {error}")
    except BaseException:
        lock.release()
        raise
    return lock, notes


def _run_checked(parser, make_task, argv, config, loaded, checkpoint, mode, markers,
                 eval_params, reference, notes):
    """:func:`run` once the options are parsed and checked: the checks of the machine, the
    lock of --save and the signal handlers around :func:`_run_guarded`."""
    if config.resume and not config.save:
        config.save = config.resume  # a resumed run keeps writing its own checkpoint
    _check_memory(parser, make_task, config)
    lock, lock_notes = _claim_checkpoint(parser, config, shlex.join([parser.prog] + argv))
    states = []
    try:
        with InterruptGuard() as guard:
            return _run_guarded(parser, make_task, argv, config, loaded, checkpoint, mode,
                                markers, eval_params, reference, lock_notes + notes, guard,
                                states)
    except Interrupted as interruption:
        # Before training, or after it (evaluating, plotting): nothing left to save.
        where = (f" after iteration {states[0].iteration}{_committed(states[0])}" if states
                 else " before training")
        print(f"error: interrupted ({interruption.name}){where}", file=sys.stderr, flush=True)
        raise SystemExit(interruption.exit_code) from None
    finally:
        if lock is not None:
            lock.release()


def _committed(state):
    """Where the run's last committed checkpoint is, for a message (or why there is none)."""
    if state.committed is None:
        return "; no checkpoint written" if state.config.save else ""
    return f"; the checkpoint {checkpoint_paths(state.config.save)[0]} holds iteration " \
           f"{state.committed}"


def _interrupted(state, interruption):
    """After an interrupt in training: save, unless a second interrupt stops it (the last
    committed checkpoint is kept). Returns the exit status and the message."""
    config = state.config
    name = getattr(interruption, "name", "SIGINT")
    code = getattr(interruption, "exit_code", _EXIT_INTERRUPTED)
    message = f"interrupted ({name}) after iteration {state.iteration}"
    if getattr(interruption, "again", False):
        return code, f"{message}; interrupted again: stopped without saving{_committed(state)}"
    if not config.save:
        return code, message
    if state.committed == state.iteration:  # nothing trained since the last checkpoint
        return code, f"{message}{_committed(state)}; resume with --resume {config.save}"
    try:
        with state.guard.critical():
            _checkpoint(state)
    except Interrupted:
        return code, (f"{message}; interrupted again while saving: stopped without saving"
                      f"{_committed(state)}")
    except CheckpointError as error:
        return _EXIT_WRITE_FAILED, f"{message}; {error}{_committed(state)}"
    return code, (f"{message}; checkpoint written to {checkpoint_paths(config.save)[0]}; resume "
                  f"with --resume {config.save}")


def _run_guarded(parser, make_task, argv, config, loaded, checkpoint, mode, markers,
                 eval_params, reference, notes, guard, states):
    """:func:`run` once the checkpoint is claimed, with the signal handlers installed;
    ``states`` receives the run's state."""
    start_iteration = int(loaded[2]["iteration"]) if config.resume else 0
    if config.resume and config.iterations < start_iteration:
        parser.error(f"--iterations ({config.iterations}) is below the {start_iteration} "
                     f"iterations of the checkpoint {config.resume}")

    task = _make_task(parser, make_task, config, config.batch_size, config.seed)
    _check_episode_params(parser, make_task, config, eval_params)
    if loaded is not None:
        _check_checkpoint_task(parser, config, task, loaded[2])
    progress = _Progress(config.iterations, config.quiet)

    model, trainer = _model_and_trainer(config, task, mode)
    progress.info(_describe_model(model, config))

    history, wall_time, earlier_runs = [], 0.0, []
    if loaded is not None:
        params, optimizer_values, info = loaded
        option = "--resume" if config.resume else "--load"
        try:
            trainer.set_parameter_values(params)
            if config.resume:
                trainer.set_optimizer_values(_spike_state_for(trainer, optimizer_values,
                                                              progress))
                task.set_state(info["task_state"])
        except (ValueError, KeyError, TypeError) as error:
            parser.error(f"{option} {checkpoint}: the checkpoint's arrays do not fit the model "
                         f"its document describes: {error}")
        # Loaded or resumed, the parameters owe something to every run behind the checkpoint.
        earlier_runs = _runs_of(info)
        if config.resume:
            history = list(info.get("history", []))
            wall_time = float(info.get("wall_time_s", 0.0))
        progress.info(f"{'resumed' if config.resume else 'loaded'} {checkpoint} "
                      f"(iteration {info['iteration']})")
    for note in notes:
        progress.info(note)

    command_line = shlex.join([parser.prog] + argv)
    this_run = {"command_line": command_line, "started_from": checkpoint,
                "first_iteration": start_iteration, "mode": mode,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    state = _RunState(config=config, trainer=trainer, task=task, history=history,
                      wall_time=wall_time, iteration=start_iteration,
                      task_state=task.get_state(), command_line=command_line,
                      runs=earlier_runs + [this_run], guard=guard)
    if config.resume and _same_file(config.resume, config.save):
        state.committed = start_iteration
    states.append(state)
    if config.resume and config.keep_best:
        state.best = _resumed_best(config, loaded[2], progress)
    if config.resume and config.average_after is not None:
        state.average = _resumed_average(config, loaded[2], start_iteration, progress)
    result = RunResult(0, config, model, trainer, start_iteration, history)
    log = _Log(config.log, append=bool(config.resume)) if config.log else None
    try:
        _train(state, make_task, parser, progress, log)
        if config.save:
            with guard.critical():
                _checkpoint(state)
    except TrainingStopped as stop:
        result.exit_code, result.message = _EXIT_DIVERGED, str(stop)
    except CheckpointError as error:
        result.exit_code = _EXIT_WRITE_FAILED
        result.message = f"training stopped after iteration {state.iteration}: {error}" \
                         f"{_committed(state)}"
    except KeyboardInterrupt as interruption:
        result.exit_code, result.message = _interrupted(state, interruption)
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
        result.best = _restore_best(state, progress)
    if state.average is not None:
        result.averaged = _restore_average(state, progress,
                                           _validation_set(parser, make_task, config))
    if config.eval_lengths:
        result.evaluation = _evaluation_table(config, trainer, make_task, parser, eval_params,
                                              reference)
    if config.plot:
        # Without training of its own, a loaded model's curve is the one of its checkpoint.
        curve = history or (loaded[2].get("history", []) if loaded is not None else [])
        _plot(config, trainer, model, make_task, parser, markers, curve, progress)
    return result


@dataclass
class _RunState:
    """What the training loop changes and checkpoints."""

    config: argparse.Namespace
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


_BEST_FIELDS = ("iteration", "val_bits_per_seq", "val_errors_per_seq")


def _spike_state_for(trainer, optimizer_values, progress):
    """A checkpoint's optimizer state for a resumed run that turns ``--clip-spikes`` on or off:
    turned on, its running average starts afresh (the first step is never rescaled); turned
    off, the checkpoint's average is dropped."""
    spike_state = [var for var in trainer.optimizer_state if var.name.startswith(_SPIKE_STATE)]
    values = OrderedDict((name, value) for name, value in optimizer_values.items()
                         if spike_state or not name.startswith(_SPIKE_STATE))
    if len(values) < len(optimizer_values):
        progress.info("--clip-spikes off: the checkpoint's running average of the gradients' "
                      "norms is dropped")
    if spike_state and not any(var.name in values for var in spike_state):
        progress.info("--clip-spikes on: its running average of the gradients' norms starts "
                      "afresh")
        # The state's initial value: no step averaged yet.
        values.update((var.name, np.zeros_like(var.get_value())) for var in spike_state)
    return values


def _keep_if_best(state, row):
    """After a validation: remember the parameters if its cost is the lowest so far.

    The comparison is strict, so of equal costs the earliest is kept; a non-finite cost is
    never kept. With --save, the parameters and optimizer state go to ``PATH-best.npz`` at
    once, a checkpoint like any other (loadable, resumable).
    """
    cost = row["val_bits_per_seq"]
    if not np.isfinite(cost) or (state.best is not None
                                 and not cost < state.best["val_bits_per_seq"]):
        return
    state.best = {name: row[name] for name in _BEST_FIELDS}
    state.best["params"] = state.trainer.parameter_values()
    state.best["path"] = None
    if state.config.save:  # before the regular checkpoint, which then records this one
        state.best["path"] = best_checkpoint_path(state.config.save)
        _save(state, state.best["path"])


def _resumed_best(config, info, progress):
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
    last_objective = _last_focus_penalty(config)
    if trained_with != last_objective:
        def objective(weight):
            return "without the focus penalty" if weight is None else \
                f"with the focus penalty at {weight:g}"
        progress.info(f"--keep-best: the checkpoint's best (iteration {record['iteration']}) "
                      f"was trained {objective(trained_with)}, this run ends "
                      f"{objective(last_objective)}: keeping the best of its validations")
        return None
    best = {name: record[name] for name in _BEST_FIELDS}
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


def _restore_best(state, progress):
    """Give the trainer the best validation's parameters; return that validation's figures."""
    best = state.best
    state.trainer.set_parameter_values(best["params"])
    where = f", saved in {best['path']}" if best["path"] else ""
    progress.info(f"--keep-best: ending with the parameters of iteration {best['iteration']} "
                  f"(validation {best['val_bits_per_seq']:.4g} bits per sequence){where}")
    return {name: best[name] for name in _BEST_FIELDS}


def _add_to_average(state):
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


def _resumed_average(config, info, start_iteration, progress):
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
def _averaged_parameters(state):
    """The trainer holds the averaged parameters inside, its own again after."""
    trainer = state.trainer
    last = trainer.parameter_values()
    trainer.set_parameter_values(_average_parameters(state))
    try:
        yield
    finally:
        trainer.set_parameter_values(last)


def _average_scores(state, validation):
    """The averaged parameters' cost on the ``validation`` batches; the trainer keeps its own
    parameters."""
    with _averaged_parameters(state):
        return _evaluate(state.trainer.predict, validation, state.config.output)


def _restore_average(state, progress, validation):
    """Give the trainer the averaged parameters; return which iterations they average and
    their cost on the ``validation`` batches."""
    average = state.average
    state.trainer.set_parameter_values(_average_parameters(state))
    scores = _evaluate(state.trainer.predict, validation, state.config.output)
    first, count = average["first_iteration"], average["count"]
    where = (f", saved in {average_checkpoint_path(state.config.save)}"
             if state.config.save else "")
    progress.info(f"--average-after: ending with the mean of the parameters after iterations "
                  f"{first} to {state.iteration} ({count:,}; validation "
                  f"{scores['bits_per_seq']:.4g} bits per sequence){where}")
    return {"first_iteration": first, "last_iteration": state.iteration, "count": count,
            "val_bits_per_seq": scores["bits_per_seq"],
            "val_errors_per_seq": scores["errors_per_seq"]}


def _checkpoint(state):
    """Checkpoint the run to --save, and its averaged parameters beside it (PATH-average.npz)
    once --average-after has started."""
    _save(state)
    if state.average is not None:
        with _averaged_parameters(state):
            _save(state, average_checkpoint_path(state.config.save), averaged=True)


def _runs_of(info):
    """The runs recorded in a checkpoint's JSON, oldest first.

    Checkpoints written before runs were recorded name only their last command line.
    """
    if "runs" in info:
        return [dict(run) for run in info["runs"]]
    if "command_line" in info:
        return [{"command_line": info["command_line"], "last_iteration": info["iteration"]}]
    return []


def _save(state, path=None, averaged=False):
    """Checkpoint the run to ``path`` (default: ``--save``); ``averaged``: the trainer holds
    the ``--average-after`` mean, written without the running sums."""
    info = {
        "iteration": state.iteration,
        "config": {key: _normalise(value) for key, value in vars(state.config).items()},
        # The task's generator as it was after the last kept iteration's batch was drawn.
        "task_state": state.task_state,
        "task": _task_description(state.task),
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
        info["best"] = {name: state.best[name] for name in _BEST_FIELDS}
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


def _new_window():
    """What the steps since the last log row add up: their losses, bits, gradient norms."""
    return {"loss": [], "bits": [], "grad_norm": [], "sequences": 0,
            "started": time.perf_counter()}


def _with_focus_penalty(config, iteration):
    """Whether the training step of ``iteration`` (counted from 1) has the focus penalty."""
    return config.focus_penalty is not None and iteration > config.focus_penalty_after


def _learning_rate_at(config, iteration):
    """The learning rate of the training step of ``iteration`` (counted from 1): the last
    ``--learning-rate-schedule`` rate whose iterations are below it, else --learning-rate."""
    rate = config.learning_rate
    for after, scheduled in config.learning_rate_schedule:
        if iteration > after:
            rate = scheduled
    return rate


def _last_focus_penalty(config):
    """The focus penalty of the run's last training step (None without one): the objective
    whose validations ``--keep-best`` compares, as history rows record it."""
    return config.focus_penalty if _with_focus_penalty(config, config.iterations) else None


def _compile_step(trainer, with_focus_penalty, progress, announcement):
    """Compile (or load from the cache) a training step at the trainer's learning rate,
    saying so; returns the seconds."""
    progress.info(announcement)
    seconds = trainer.compile(with_focus_penalty)
    name = "train_focus" if with_focus_penalty else "train"
    progress.info(f"loaded the compiled function from the cache in {seconds:.1f} s"
                  if name in trainer.loaded else f"compiled in {seconds:.1f} s")
    return seconds


def _validation_set(parser, make_task, config):
    """The run's fixed validation batches, from their own generator: validating never draws
    from the training task, so it cannot change the training data of a resumed run."""
    # A task may validate on other data than it trains on (e.g. stories held out of a file).
    make_validation_task = getattr(make_task, "make_validation_task", make_task)
    validation_task = _make_task(parser, make_validation_task, config, config.batch_size,
                                 [config.seed, 1])
    return [validation_task.sample_with_mask() for _ in range(config.validation_batches)]


def _train(state, make_task, parser, progress, log):
    """Train from ``state.iteration`` to ``--iterations``; raise TrainingStopped on NaN."""
    config, trainer, task = state.config, state.trainer, state.task
    if state.iteration >= config.iterations:
        return
    validation = _validation_set(parser, make_task, config)
    penalty_on = _with_focus_penalty(config, state.iteration + 1)
    trainer.learning_rate = _learning_rate_at(config, state.iteration + 1)
    if not trainer.is_compiled(penalty_on):
        _compile_step(trainer, penalty_on, progress,
                      f"compiling the training function ({trainer.mode} mode)...")
    progress.info(f"training from iteration {state.iteration} to {config.iterations}")
    if config.focus_penalty is not None and not _with_focus_penalty(config, config.iterations):
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

    window = _new_window()
    loop_started = time.perf_counter()
    wall_before = state.wall_time
    for iteration in state.guard.between_iterations(range(state.iteration + 1,
                                                           config.iterations + 1)):
        x, y, mask = task.sample_with_mask()
        if config.debug_nan_at == iteration:
            trainer.inject_nan(True)
        with_focus_penalty = _with_focus_penalty(config, iteration)
        changes = []
        if with_focus_penalty and not penalty_on:
            penalty_on = True
            changes.append(f"the focus penalty ({config.focus_penalty:g}) turns on")
        learning_rate = _learning_rate_at(config, iteration)
        if learning_rate != trainer.learning_rate:
            trainer.learning_rate = learning_rate
            changes.append(f"the learning rate is {learning_rate:g}")
        if not trainer.is_compiled(with_focus_penalty):
            # The step of --focus-penalty-after or a new rate; its compile is no training.
            seconds = _compile_step(trainer, with_focus_penalty, progress,
                                    f"iteration {iteration}: {' and '.join(changes)}; "
                                    f"compiling its training step...")
            loop_started += seconds
            window["started"] += seconds
        elif changes:
            progress.info(f"iteration {iteration}: {' and '.join(changes)}")
        step = trainer.train_step(x, y, mask, with_focus_penalty)
        if config.debug_nan_at == iteration:
            trainer.inject_nan(False)
        if not step.finite:
            kept = f"the parameters and optimizer state after iteration {state.iteration}"
            where = (f"; they are in the checkpoint {config.save}" if config.save
                     else " (give --save to keep them)")
            if config.save:
                try:
                    _checkpoint(state)
                except CheckpointError as error:
                    where = f"; {error}{_committed(state)}"
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
            _add_to_average(state)
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
            if with_focus_penalty:  # the rows of runs without it stay as they were
                row["focus_penalty"] = config.focus_penalty
            if config.learning_rate_schedule:  # so do those of runs without a schedule
                row["learning_rate"] = trainer.learning_rate
            if validate:
                scores = _evaluate(trainer.predict, validation, config.output)
                row["val_bits_per_seq"] = scores["bits_per_seq"]
                row["val_errors_per_seq"] = scores["errors_per_seq"]
                if state.average is not None:  # and the mean's, once --average-after started
                    scores = _average_scores(state, validation)
                    row["avg_val_bits_per_seq"] = scores["bits_per_seq"]
                    row["avg_val_errors_per_seq"] = scores["errors_per_seq"]
            state.history.append(row)
            # With the penalty turned on, earlier validations were of another objective.
            if validate and config.keep_best and \
                    row.get("focus_penalty") == _last_focus_penalty(config):
                _keep_if_best(state, row)
            if log is not None:
                log.write(row)
            progress.row(row, force_line=validate)
            window = _new_window()
            if validate and config.stop_below is not None \
                    and row["val_bits_per_seq"] < config.stop_below:
                progress.info(f"validation below {config.stop_below:g} bits per sequence at "
                              f"iteration {iteration} ({iteration * config.batch_size} "
                              f"sequences): stopping")
                if not _with_focus_penalty(config, iteration) and \
                        _with_focus_penalty(config, config.iterations):
                    progress.info(f"(before the focus penalty turns on after iteration "
                                  f"{config.focus_penalty_after}: the heads may still be "
                                  f"spread where they have nothing to do)")
                return
        if config.save and config.checkpoint_every and iteration % config.checkpoint_every == 0 \
                and not last:
            _checkpoint(state)


def _evaluation_table(config, trainer, make_task, parser, eval_params, reference):
    """Score the model at each --eval-lengths value and print the table."""
    rows = []
    for value in config.eval_lengths:
        # One generator per value, seeded by it: the table does not depend on its order.
        task = _make_task(parser, make_task, config, config.batch_size, [config.seed, 2, value])
        params = _eval_params(config, task, value, eval_params)
        batches = [task.sample_with_mask(**params) for _ in range(config.eval_batches)]
        row = {"value": value, **_evaluate(trainer.predict, batches, config.output)}
        if reference is not None:
            row["reference_bits_per_seq"] = float(np.mean(np.concatenate(
                [np.atleast_1d(reference(task, x, y, mask)) for x, y, mask in batches])))
        rows.append(row)
    errors = "bit errors/seq" if config.output == "bits" else "wrong answers/seq"
    header = f"{config.eval_param:>12} | {'bits/seq':>10} | {errors:>17} | {'perfect':>7}"
    if reference is not None:
        header += f" | {'reference bits/seq':>18}"
    lines = [f"evaluation on {rows[0]['sequences']} sequences per value:", header,
             "-" * len(header)]
    for row in rows:
        line = (f"{row['value']:>12} | {row['bits_per_seq']:>10.3f} | "
                f"{row['errors_per_seq']:>17.3f} | {row['perfect']:>7.3f}")
        if reference is not None:
            line += f" | {row['reference_bits_per_seq']:>18.3f}"
        lines.append(line)
    print("\n".join(lines), flush=True)
    return rows


def _training_events(rows):
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


def _validation_curves(history):
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


def _plot(config, trainer, model, make_task, parser, markers, history, progress):
    """Heat maps of one episode and the learning curve."""
    from .visualization import Dashboard, learning_curve

    task = _make_task(parser, make_task, config, 1, [config.seed, 3])
    dashboard = Dashboard(trainer.predict, task, model.memory_shape,
                          ntm_layer_fn=trainer.details if model.l_ntm is not None else None,
                          markers=markers(task) if markers else ())
    dashboard.save(config.plot, **config.plot_params)
    rows = [row for row in history if row.get("train_bits_per_seq") is not None]
    if rows:
        learning_curve([row["train_bits_per_seq"] for row in rows], curve_path(config.plot),
                       window=min(10, len(rows)), ylabel="bits per sequence",
                       iterations=[row["iteration"] for row in rows],
                       events=_training_events(rows), label="training",
                       others=_validation_curves(history))
        progress.info(f"heat maps written to {config.plot}, learning curve to "
                      f"{curve_path(config.plot)}")
    else:
        progress.info(f"heat maps written to {config.plot} (no history for a learning curve)")
