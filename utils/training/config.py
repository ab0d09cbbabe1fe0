"""The training's configuration: every option declared once.

An :class:`Option` says what the command line spells (``--num-units``), the value's type and
default, its help, whether it shapes the model (a checkpoint then fits only a model built with
the same value: ``--load`` and ``--resume`` take it from the checkpoint and refuse another),
whether the model builders take it, whether it decides the compiled training step, whether a
resumed run takes it from its checkpoint, its checks, and how it is written to a checkpoint's
document and read back. :data:`OPTIONS` lists the options every example script shares; a task
adds its own as :class:`TaskOption`. The lists the rest of the package needs are read off the
declarations: :data:`MODEL_OPTIONS`, :data:`BUILD_OPTIONS`, :data:`GRAPH_OPTIONS`,
:data:`RESUMED_OPTIONS`.

The configuration itself is a namespace of attributes named after the options
(``config.num_units``), made by :mod:`utils.training.cli`. :func:`check_config` raises
:class:`~utils.training.errors.ConfigError` naming each option at fault; :func:`resolve`
completes a parsed configuration (a checkpoint's options, the optimizer's learning rate) and
checks it. Nothing here talks to argparse.
"""
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import pytensor
from pytensor.link.jax.linker import JAXLinker  # imported by PyTensor itself; needs no jax

from ntm.controllers import DenseController, GRUController, LSTMController, RecurrentController

from .errors import ConfigError
from .migrations import saved_config
from .values import (PLOT_FORMATS, above_zero, at_least, check_average_after, check_heads,
                     check_learning_rate, check_memory_shape, check_schedule, check_seed,
                     check_shifts, checkpoint_exists, directory_exists, format_schedule,
                     format_value, has_suffix, listed, needs_heads, not_both_checkpoints,
                     one_of, option_name, parse_iterations_or_none, parse_kernel_threads,
                     parse_key_values, parse_positive_ints, parse_schedule)

__all__ = ["DEFAULT_MODE", "LEARNING_RATES", "CONTROLLERS", "OUTPUT_KINDS", "SPIKE_AVERAGE_DECAY",
           "JAX_UNSUPPORTED_PYTENSOR", "LOG_COLUMNS", "Option", "TaskOption", "OPTIONS",
           "MODEL_OPTIONS", "BUILD_OPTIONS", "GRAPH_OPTIONS", "RESUMED_OPTIONS", "option",
           "model_options", "config_document", "check_config", "resolve_mode",
           "merge_checkpoint", "resolve", "with_focus_penalty", "last_focus_penalty",
           "learning_rate_at"]

#: PyTensor mode used unless ``--mode`` or the environment variable ``NTM_MODE`` says otherwise:
#: the C backend, which starts training soonest; Numba (``--mode NUMBA``) steps faster but
#: compiles for minutes on its first run (cached on disk afterwards), for long runs.
DEFAULT_MODE = "CVM"

#: Learning rate of each optimizer when ``--learning-rate`` is not given.
LEARNING_RATES = OrderedDict([("graves_rmsprop", 3e-4), ("adam", 1e-3), ("rmsprop", 1e-3)])

#: Controller classes by their ``--controller`` name.
CONTROLLERS = OrderedDict([("dense", DenseController), ("recurrent", RecurrentController),
                           ("lstm", LSTMController), ("gru", GRUController)])

#: ``"bits"``: independent sigmoid outputs scored by binary cross-entropy (the algorithmic
#: tasks); ``"categorical"``: a softmax over the output channels scored by categorical
#: cross-entropy (question answering).
OUTPUT_KINDS = ("bits", "categorical")

#: Decay of the running average of the gradients' norms that ``--clip-spikes`` compares a
#: step's norm with (a window of about 100 steps).
SPIKE_AVERAGE_DECAY = 0.99

#: PyTensor versions whose JAX backend was found unable to run the examples' models at all:
#: the scan over the sequence allocates its states and outputs with the batch size of the
#: input, which JAX traces (JAX: "Shapes must be 1D sequences of concrete values").
JAX_UNSUPPORTED_PYTENSOR = ("3.0.7",)


#: Columns of the ``--log`` file, in order.
LOG_COLUMNS = ("iteration", "loss", "train_bits_per_seq", "val_bits_per_seq",
               "val_errors_per_seq", "seq_per_s", "elapsed_s", "grad_norm_max")


# --------------------------------------------------------------------------------------------
# The declarations
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One option of the configuration.

    Parameters
    ----------
    name : str
        The command line's name without the dashes (``"num-units"``); the configuration's
        attribute is :attr:`dest` (``num_units``).
    type : callable
        ``int``, ``float``, ``str``, ``bool`` (``--name/--no-name``, or a flag ``--name`` when
        not ``negatable``), or a function of the text that returns the value and raises
        :class:`~utils.training.errors.ConfigError` for text it cannot read.
    default : object
        The value when neither the command line nor the script gives one.
    help : str
        The help text; ``{eval_param}`` stands for the script's evaluated episode parameter.
    group : str
        The section of ``--help``.
    choices, metavar, nargs :
        As argparse's.
    negatable : bool
        For a bool: ``--name/--no-name`` (True) or a flag ``--name``.
    shapes_model : bool
        The value decides the network's parameters: a checkpoint fits only a model built with
        the same, so ``--load`` and ``--resume`` take it from the checkpoint and refuse another.
    builds : bool
        The model builders take it (:func:`utils.training.building.build_ntm`'s arguments).
    compiles : bool
        It decides the compiled training step (the key of compiled and reused functions).
    resumed : bool
        A resumed run takes it from its checkpoint unless the command line gives it.
    zero_is_off : bool
        0 turns the option off: it is stored as None, so that the graph is that of no option.
    checks : tuple of callable
        ``check(value, config)`` returns what is wrong (a message without the option's name)
        or None.
    on_command_line : bool
        False for the settings a script makes (``output``, ``eval_param``).
    """

    name: str
    type: Callable
    default: Any
    help: str
    group: str
    choices: Optional[tuple] = None
    metavar: Any = None
    nargs: Optional[int] = None
    negatable: bool = True
    shapes_model: bool = False
    builds: bool = False
    compiles: bool = False
    resumed: bool = False
    zero_is_off: bool = False
    checks: tuple = ()
    on_command_line: bool = True

    @property
    def dest(self):
        """The attribute name in the configuration."""
        return self.name.replace("-", "_")

    @staticmethod
    def to_checkpoint(value):
        """The value as a checkpoint's JSON document holds it (sequences as lists)."""
        return listed(value)

    @staticmethod
    def from_checkpoint(value):
        """The value of a checkpoint's document as the configuration holds it (a list copied,
        so that the configuration owns it)."""
        return list(value) if isinstance(value, list) else value


class TaskOption(NamedTuple):
    """A command-line option of a task, e.g. ``TaskOption("max-length", int, 20, "...")``.

    Parameters
    ----------
    name : str
        Option name without the dashes (``"max-length"`` gives ``--max-length`` and the
        attribute ``max_length`` of the configuration).
    type : type
        ``int``, ``float``, ``str`` or ``bool`` (a bool becomes ``--name/--no-name``), or a
        function of the text.
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
        the option is as old as the checkpoints); see :mod:`utils.training.migrations`.
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


_MODEL, _TRAIN, _CHECKPOINTS, _OUTPUT = ("model", "training", "checkpoints",
                                         "evaluation and output")
_RATES = ", ".join(f"{name} {rate:g}" for name, rate in LEARNING_RATES.items())

#: The options every example script shares, in the order of ``--help``.
OPTIONS = (
    Option("output", str, "bits", "the kind of output layer and loss", _MODEL,
           choices=OUTPUT_KINDS, shapes_model=True, builds=True, on_command_line=False),
    Option("eval-param", str, "length", "the episode parameter --eval-lengths sets", _OUTPUT,
           on_command_line=False),
    Option("model", str, "ntm", "an NTM, or an LSTM baseline whose number of units makes its "
           "parameter count close to the NTM's with the same options", _MODEL,
           choices=("ntm", "lstm"), shapes_model=True),
    Option("controller", str, "dense", "the NTM's controller", _MODEL,
           choices=tuple(CONTROLLERS), shapes_model=True, builds=True),
    Option("num-units", int, 100, "controller units", _MODEL, shapes_model=True, builds=True,
           checks=(at_least(1),)),
    Option("num-reads", int, 1, "number of read heads", _MODEL, shapes_model=True, builds=True,
           checks=(at_least(0), check_heads)),
    Option("num-writes", int, 1, "number of write heads", _MODEL, shapes_model=True,
           builds=True, checks=(at_least(0),)),
    Option("memory-shape", int, [128, 20], "memory locations N and their size M; with --load, "
           "N may differ from the checkpoint's where no trained parameter spans the memory "
           "(its initial memory and weightings are constants)", _MODEL, metavar=("N", "M"),
           nargs=2, shapes_model=True, builds=True, checks=(check_memory_shape,)),
    Option("num-shifts", int, 3, "number of shift offsets of each head (odd)", _MODEL,
           shapes_model=True, builds=True, checks=(check_shifts,)),
    Option("learn-memory-init", bool, True, "train the memory's initial state M_0, or keep it "
           "at its small constant (--no-learn-memory-init); this task's default: %(default)s",
           _MODEL, builds=True, compiles=True, resumed=True),
    Option("iterations", int, 10000, "training iterations (batches) in all, counting those of "
           "a resumed checkpoint (whose own target is kept unless given)", _TRAIN,
           resumed=True, checks=(at_least(0),)),
    Option("batch-size", int, 1, "sequences per batch", _TRAIN, resumed=True,
           checks=(at_least(1),)),
    Option("seed", int, 0, "seed of the initial parameters and of the training data; "
           "validation, evaluation and plots use seeds derived from it", _TRAIN, resumed=True,
           checks=(check_seed,)),
    Option("optimizer", str, "graves_rmsprop", "update rule (graves_rmsprop: Graves 2013, as "
           "in the NTM paper)", _TRAIN, choices=tuple(LEARNING_RATES), compiles=True,
           resumed=True, checks=(one_of(tuple(LEARNING_RATES)),)),
    Option("learning-rate", float, None, f"step size; by default the optimizer's ({_RATES})",
           _TRAIN, resumed=True, checks=(check_learning_rate,)),
    Option("learning-rate-schedule", parse_schedule, [], "lower (or raise) the learning rate "
           "during the run: after ITERATIONS iterations, train at RATE; e.g. --learning-rate "
           "5e-4 --learning-rate-schedule 24000:2e-4,30000:1e-4 trains the first 24,000 "
           "iterations at 5e-4, the next 6,000 at 2e-4 and the rest at 1e-4, as would a run "
           "resumed at each rate; 'none': none; a --learning-rate given without it trains at "
           "that rate throughout (default: none)", _TRAIN, metavar="ITERATIONS:RATE,...",
           resumed=True, checks=(check_schedule,)),
    Option("max-norm", float, 10.0, "rescale the gradients when their total norm exceeds this "
           "(0: off)", _TRAIN, compiles=True, resumed=True, checks=(at_least(0, off=True),)),
    Option("grad-clip", float, None, "clip every gradient element to [-value, value] "
           "(default: off)", _TRAIN, compiles=True, resumed=True, checks=(above_zero,)),
    Option("clip-spikes", float, None, "rescale a step whose gradients' total norm exceeds K "
           "times the running average of the earlier steps' norms (decay "
           f"{SPIKE_AVERAGE_DECAY}) to that norm (0: off)", _TRAIN, metavar="K", compiles=True,
           resumed=True, zero_is_off=True, checks=(at_least(0, off=True),)),
    Option("focus-penalty", float, None, "add LAMBDA times the mean entropy (nats) of the read "
           "and of the write heads' weightings to the loss the gradients are taken of, pulling "
           "every head onto one location (0: off); e.g. 0.1 for a few thousand batches after "
           "convergence", _TRAIN, metavar="LAMBDA", resumed=True, zero_is_off=True,
           checks=(at_least(0, off=True), needs_heads)),
    Option("focus-penalty-after", int, 0, "with --focus-penalty: train the first ITERATIONS "
           "iterations on the loss alone, the rest with the penalty (0: all with it)", _TRAIN,
           metavar="ITERATIONS", resumed=True, checks=(at_least(0),)),
    Option("mode", str, None, "PyTensor mode: CVM (C backend, starts soonest), NUMBA (fastest "
           "steps; its first run compiles for minutes, then it is cached), or FAST_COMPILE; "
           f"default: the environment variable NTM_MODE, else {DEFAULT_MODE}", _TRAIN),
    Option("kernel-threads", parse_kernel_threads, None, "threads of the NTM's memory "
           "kernels: auto (time the first steps with the kernels' automatic setting and with "
           "a thread per core, keep the faster, and time them again every 2000 steps or when "
           "the steps slow down) or a number of threads for every call; the results are the "
           "same either way",
           _TRAIN, metavar="auto|N"),
    Option("floatX", str, "float32", "float type of the parameters, data and computations "
           "(float32 is faster; float64 for exact comparisons)", _TRAIN,
           choices=("float32", "float64"), resumed=True),
    Option("quiet", bool, False, "print no progress, only the evaluation table and errors",
           _TRAIN, negatable=False),
    Option("log-every", int, 100, "iterations between progress lines and log rows", _TRAIN,
           resumed=True, checks=(at_least(1),)),
    Option("save", str, None, "write checkpoints here: PATH.npz (parameters, optimizer state "
           "and a document of the options, iteration, random state and history), each "
           "committed whole in one step, and PATH.json, a readable copy of the document; the "
           "run holds PATH.lock meanwhile", _CHECKPOINTS, metavar="PATH.npz",
           checks=(has_suffix(".npz"), directory_exists)),
    Option("overwrite", bool, False, "let --save replace a checkpoint of another run (needed "
           "unless it is the one --resume continues)", _CHECKPOINTS, negatable=False),
    Option("load", str, None, "start from the parameters of this checkpoint (to evaluate, plot "
           "or fine-tune; the optimizer starts afresh, which can throw a nearly converged "
           "model back: --resume keeps its state); model and task options not given are taken "
           "from it", _CHECKPOINTS, metavar="PATH.npz",
           checks=(not_both_checkpoints, checkpoint_exists)),
    Option("resume", str, None, "continue this checkpoint's run up to --iterations, exactly as "
           "if it had not stopped; options not given are the checkpoint's, and checkpoints go "
           "back to it unless --save is given", _CHECKPOINTS, metavar="PATH.npz",
           checks=(checkpoint_exists,)),
    Option("checkpoint-every", int, 1000, "iterations between checkpoints with --save (0: only "
           "at the end)", _CHECKPOINTS, resumed=True, checks=(at_least(0),)),
    Option("validate-every", int, 500, "iterations between validations (0: only at the end)",
           _OUTPUT, resumed=True, checks=(at_least(0),)),
    Option("stop-below", float, None, "stop training at the first validation whose bits per "
           "sequence are below this (default: train all iterations)", _OUTPUT, metavar="BITS",
           resumed=True, checks=(above_zero,)),
    Option("keep-best", bool, False, "end with the parameters of the validation with the "
           "lowest bits per sequence (of those trained with the run's last objective: after "
           "--focus-penalty-after, those with the penalty): the evaluation and the plot use "
           "them, and --save writes them, with their optimizer state, to PATH-best.npz at each "
           "new best (PATH.npz keeps the last iteration's, for --resume)", _OUTPUT,
           resumed=True),
    Option("average-after", parse_iterations_or_none, None, "end with the mean of the "
           "parameters after each iteration past ITERATIONS (Polyak averaging): the evaluation "
           "and the plot use it, and --save writes it to PATH-average.npz (PATH.npz keeps the "
           "last iteration's and the running sum, for --resume), and validations give the "
           "mean's cost too; e.g. over the last tens of thousands of iterations at a low "
           "learning rate; 'none': off (default: off)", _OUTPUT, metavar="ITERATIONS",
           resumed=True, checks=(at_least(0), check_average_after)),
    Option("validation-batches", int, 8, "batches (of --batch-size sequences) in the fixed "
           "validation set", _OUTPUT, resumed=True, checks=(at_least(1),)),
    Option("eval-lengths", parse_positive_ints, None, "after training, evaluate at these "
           "values of the task's '{eval_param}' and print a table", _OUTPUT,
           metavar="V1,V2,..."),
    Option("eval-batches", int, 8, "batches (of --batch-size sequences) per --eval-lengths "
           "value", _OUTPUT, checks=(at_least(1),)),
    Option("plot", str, None, "draw the heat maps of one episode to FILE.png and the learning "
           "curve (training and validation costs) to FILE-curve.png", _OUTPUT,
           metavar="FILE.png", checks=(has_suffix(*PLOT_FORMATS, lower=True,
                                               what=", ".join(PLOT_FORMATS)),
                                       directory_exists)),
    Option("plot-params", parse_key_values, {}, "episode parameters of the plotted episode, "
           "e.g. {eval_param}=40; the others are drawn as in training", _OUTPUT,
           metavar="NAME=VALUE,..."),
    Option("log", str, None, "write one row per --log-every iterations: " + ", ".join(LOG_COLUMNS),
           _OUTPUT, metavar="FILE.csv|FILE.jsonl", resumed=True,
           checks=(has_suffix(".csv", ".jsonl", what=".csv or .jsonl"), directory_exists)),
)

_BY_DEST = OrderedDict((declared.dest, declared) for declared in OPTIONS)

#: The options that decide the network's parameters (a checkpoint fits only the same).
MODEL_OPTIONS = tuple(o.dest for o in OPTIONS if o.shapes_model)
#: The options the model builders take as keyword arguments.
BUILD_OPTIONS = tuple(o.dest for o in OPTIONS if o.builds)
#: The options that decide a model's compiled training step (besides its learning rate, a
#: variable of the step, and its focus penalty, which has a step of its own).
GRAPH_OPTIONS = tuple(o.dest for o in OPTIONS if o.shapes_model or o.compiles)
#: The options a resumed run takes from its checkpoint unless given again.
RESUMED_OPTIONS = tuple(o.dest for o in OPTIONS if o.resumed)


def option(dest):
    """The :class:`Option` whose attribute is ``dest``."""
    return _BY_DEST[dest]


def model_options(task_options):
    """The model-shaping options of a script: the shared ones and the task's own."""
    return MODEL_OPTIONS + tuple(o.dest for o in task_options if o.affects_model)


def config_document(config):
    """The configuration as a checkpoint's document holds it: every attribute, sequences as
    lists."""
    return {key: Option.to_checkpoint(value) for key, value in vars(config).items()}


# --------------------------------------------------------------------------------------------
# Checking and completing a configuration
# --------------------------------------------------------------------------------------------

def check_config(config):
    """Check every option's value.

    Raises
    ------
    ConfigError
        Naming each option at fault and what it expects, in one line.
    """
    problems = []
    for declared in OPTIONS:
        for check in declared.checks:
            problem = check(getattr(config, declared.dest), config)
            if problem:
                problems.append(f"{option_name(declared.dest)}: {problem}")
    if problems:
        raise ConfigError("; ".join(problems))


def resolve_mode(config):
    """The PyTensor mode the run compiles in: ``--mode``, else ``NTM_MODE``, else
    :data:`DEFAULT_MODE`.

    Raises
    ------
    ConfigError
        For a mode PyTensor does not know, and for JAX where its backend cannot run the
        models (any PyTensor of :data:`JAX_UNSUPPORTED_PYTENSOR`) or train them.
    """
    mode = config.mode or os.environ.get("NTM_MODE") or DEFAULT_MODE
    try:
        linker = pytensor.compile.mode.get_mode(mode).linker
    except Exception as error:  # PyTensor raises several kinds for an unknown mode
        raise ConfigError(f"--mode: unknown PyTensor mode {mode!r} ({error})") from None
    if isinstance(linker, JAXLinker):
        if pytensor.__version__ in JAX_UNSUPPORTED_PYTENSOR:
            raise ConfigError(f"--mode: {mode} cannot run these models with PyTensor "
                              f"{pytensor.__version__}: its JAX backend needs the shapes of "
                              f"the sequences when it compiles; use CVM or NUMBA")
        if config.iterations:
            # The gradient of a scan over sequences of unknown length fails in PyTensor's JAX
            # backend (docs/upstream/jax_scan_gradient.py); the forward pass runs.
            raise ConfigError(f"--mode: {mode} evaluates a model (--iterations 0) but cannot "
                              f"train one with PyTensor {pytensor.__version__}: its JAX "
                              f"backend cannot differentiate a scan over sequences of unknown "
                              f"length; train with CVM or NUMBA")
    return mode


def merge_checkpoint(config, explicit, document, task_options, resume):
    """Take from a checkpoint's document the options the command line left out.

    ``--load`` and ``--resume`` take the model-shaping options and the task's; ``--resume``
    also the training options (:data:`RESUMED_OPTIONS`). Options the checkpoint predates take
    their earlier values (:func:`utils.training.migrations.saved_config`).

    Parameters
    ----------
    config : namespace
        Changed in place.
    explicit : set of str
        The options the command line gave.
    document : dict
        The checkpoint's document.
    task_options : sequence of TaskOption
    resume : bool
        ``--resume`` (True) or ``--load``.

    Raises
    ------
    ConfigError
        When the command line gives a model-shaping option (or, resuming, the optimizer) a
        value other than the checkpoint's, or the script's output kind is not its.
    """
    saved = saved_config(document, task_options)
    shaping = model_options(task_options)
    # The task too: a loaded model is evaluated and drawn on the task it learned (say bAbI's
    # task 2) unless the command line names another.
    taken = shaping + tuple(o.dest for o in task_options) + (RESUMED_OPTIONS if resume else ())
    conflicts = []
    for dest in shaping + (("optimizer",) if resume else ()):
        if dest in saved and dest in explicit and \
                listed(getattr(config, dest)) != listed(saved[dest]):
            conflicts.append(f"{option_name(dest)} {format_value(getattr(config, dest))} "
                             f"(checkpoint: {format_value(saved[dest])})")
    # The output kind belongs to the script, not to the command line.
    if saved.get("output", config.output) != config.output:
        conflicts.append(f"{config.output} outputs (checkpoint: {saved['output']})")
    if conflicts:
        flag = "--resume" if resume else "--load"
        raise ConfigError(f"{flag} {config.resume if resume else config.load}: the "
                          f"checkpoint does not match this model: {'; '.join(conflicts)}")
    for dest in taken:
        if dest in saved and dest not in explicit:
            setattr(config, dest, Option.from_checkpoint(saved[dest]))


def resolve(config, explicit):
    """Complete and check a configuration whose checkpoint's options are merged.

    A learning rate given alone replaces the schedule (the script's or the checkpoint's);
    ``--keep-best`` given replaces the script's averaging; the learning rate defaults to the
    optimizer's (:data:`LEARNING_RATES`); the LSTM baseline drops a script's default focus
    penalty; 0 turns off the options that it turns off.

    Parameters
    ----------
    config : namespace
        Changed in place.
    explicit : set of str
        The options the command line gave.

    Returns
    -------
    list of str
        Notes on what was replaced, for the run to print.

    Raises
    ------
    ConfigError
        Naming the options at fault.
    """
    notes = []
    if "learning_rate" in explicit and "learning_rate_schedule" not in explicit and \
            config.learning_rate_schedule:
        # A schedule (the script's, or a resumed checkpoint's) belongs with the rate it starts
        # from: a rate given alone replaces the whole plan and is kept throughout.
        owner = "the checkpoint's" if config.resume else "this script's"
        notes.append(f"--learning-rate {config.learning_rate:g} given: {owner} "
                     f"--learning-rate-schedule {format_schedule(config.learning_rate_schedule)}"
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
    check_config(config)
    for declared in OPTIONS:
        if declared.zero_is_off and getattr(config, declared.dest) == 0:
            setattr(config, declared.dest, None)  # one value for "off": the graph of no option
    if config.focus_penalty is None and config.focus_penalty_after and \
            "focus_penalty_after" in explicit:
        raise ConfigError("--focus-penalty-after: there is no --focus-penalty to turn on")
    return notes


# --------------------------------------------------------------------------------------------
# What the configuration says about each iteration
# --------------------------------------------------------------------------------------------

def with_focus_penalty(config, iteration):
    """Whether the training step of ``iteration`` (counted from 1) has the focus penalty."""
    return config.focus_penalty is not None and iteration > config.focus_penalty_after


def last_focus_penalty(config):
    """The focus penalty of the run's last training step (None without one): the objective
    whose validations ``--keep-best`` compares, as history rows record it."""
    return config.focus_penalty if with_focus_penalty(config, config.iterations) else None


def learning_rate_at(config, iteration):
    """The learning rate of the training step of ``iteration`` (counted from 1): the last
    ``--learning-rate-schedule`` rate whose iterations are below it, else --learning-rate."""
    rate = config.learning_rate
    for after, scheduled in config.learning_rate_schedule:
        if iteration > after:
            rate = scheduled
    return rate
