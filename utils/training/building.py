"""The networks of the example scripts: built from a configuration, or from a checkpoint.

:func:`build_model` builds what the configuration describes for a task's input and output
sizes: an NTM (:func:`build_ntm`) or an LSTM baseline of about as many parameters
(:func:`build_lstm_baseline`), followed by a dense output layer at every step, sigmoid for bit
outputs, softmax for categorical ones. :func:`masked_loss` is their training loss.
:func:`load_model` builds a checkpoint's network and sets its parameters, for using a trained
model from Python.
"""
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt

from ntm.heads import ReadHead, WriteHead
from ntm.lasagne import layers, nonlinearities, objectives
from ntm.lasagne import random as lasagne_random
from ntm.layers import NTMLayer
from ntm.memory import Memory

from .checkpoints import load_best_parameters, load_checkpoint
from .config import BUILD_OPTIONS, CONTROLLERS
from .migrations import saved_config

__all__ = ["PROBABILITY_CLIP", "Model", "build_ntm", "build_lstm_baseline", "lstm_units_for",
           "build_model", "masked_loss", "set_values", "task_description", "task_mismatch",
           "parameters_for_memory_shape", "load_model"]

#: Predictions are clipped to ``[PROBABILITY_CLIP, 1 - PROBABILITY_CLIP]`` before the
#: logarithms of the loss, so that a confident mistake costs a large but finite amount.
PROBABILITY_CLIP = 1e-6


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
        A key of :data:`~utils.training.config.CONTROLLERS`.
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
        a training sequence reaches.

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
    config : namespace
        The configuration: ``model`` and the options the builders take
        (:data:`utils.training.config.BUILD_OPTIONS`).
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
    ntm_options = {name: getattr(config, name) for name in BUILD_OPTIONS}
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
# Loss
# --------------------------------------------------------------------------------------------

def masked_loss(prediction, target, mask, output="bits"):
    """The training loss and the cross-entropy in bits per sequence, symbolically.

    Predictions are clipped to ``[PROBABILITY_CLIP, 1 - PROBABILITY_CLIP]`` before the
    logarithms, so that a confident mistake costs a large but finite amount.

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
    clipped = pt.clip(prediction, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    if output == "bits":
        per_step = objectives.binary_crossentropy(clipped, target).sum(axis=-1)
    else:
        per_step = objectives.categorical_crossentropy(clipped, target)
    total = (per_step * mask).sum()
    loss = total / pt.maximum(mask.sum(), 1)
    bits = total / pt.cast(prediction.shape[0], pytensor.config.floatX) / np.log(2.0)
    return loss, bits


# --------------------------------------------------------------------------------------------
# Parameters, and the networks of checkpoints
# --------------------------------------------------------------------------------------------

def set_values(variables, values, what="parameters"):
    """Set shared variables from ``{name: array}`` by their names, after checking that the
    names and shapes are exactly the variables'.

    Parameters
    ----------
    variables : list of SharedVariable
    values : dict
        ``{name: array}``; cast to each variable's type.
    what : str
        What the values are, for the message (``"parameters"``, ``"optimizer state"``).

    Raises
    ------
    ValueError
        Naming the missing, unexpected or misshapen values; nothing is set then.
    """
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


def task_description(task):
    """What a checkpoint records of the task a network was built for: its class and sizes."""
    return {"class": type(task).__name__, "input_size": task.input_size,
            "output_size": task.output_size}


def task_mismatch(info, task):
    """Why a checkpoint's network does not fit ``task`` (its channels), or None."""
    saved = info.get("task", {})
    here = task_description(task)
    if [saved.get("input_size"), saved.get("output_size")] == [here["input_size"],
                                                                here["output_size"]]:
        return None
    return (f"it reads {saved.get('input_size')} and writes {saved.get('output_size')} "
            f"channels ({saved.get('class')}), this task {here['input_size']} and "
            f"{here['output_size']} ({here['class']})")


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
        ``{name: array}`` of the checkpoint's parameters
        (:func:`~utils.training.checkpoints.load_checkpoint`).
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
    saved = SimpleNamespace(**saved_config(info))
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
                config = SimpleNamespace(**dict(vars(saved), memory_shape=shape))
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
    mismatch = task_mismatch(info, task)
    if mismatch:
        raise ValueError(f"task: {path} does not fit: {mismatch}")
    if memory_shape is not None:
        try:
            params = parameters_for_memory_shape(params, info, memory_shape)
        except ValueError as error:
            raise ValueError(f"memory_shape: {path}: {error}") from None
        info = dict(info, config=dict(info["config"], memory_shape=list(memory_shape)))
    model = build_model(SimpleNamespace(**saved_config(info)), task)
    set_values(layers.get_all_params(model.l_output), params, "parameters")
    return model, info
