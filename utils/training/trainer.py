"""The trainer: a model's compiled training step, predictions and NTM details.

The training step is one PyTensor function that computes the loss, its gradients, their
clippings and the optimizer's update of the parameters and of its own state, all guarded
against non-finite values. Its learning rate is a shared variable of the step, of the model's
float type, so that one compiled step serves every rate of a schedule: a step at a rate
computes, bit for bit, what a step compiled with that rate as a constant of that type computes
where the backend computes with the constant's type (PyTensor's Python backend, and every
backend in float64). PyTensor's C code writes a float32 constant as a decimal literal, which C
reads as a double, and Numba's code treats constants its own way: there a float32 step at a
rate and one compiled with the rate as a constant differ in the last bits.
"""
import json
import os
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace

from ntm.accel import accelerated
from ntm.lasagne import layers
from ntm.lasagne import random as lasagne_random
from ntm.lasagne import updates as lasagne_updates
from ntm.updates import graves_rmsprop

from ..function_cache import cached_function
from .building import build_model, masked_loss, set_values
from .config import DEFAULT_MODE, GRAPH_OPTIONS, LEARNING_RATES, SPIKE_AVERAGE_DECAY
from .values import learning_rate_problem, listed

__all__ = ["SPIKE_STATE", "StepResult", "Trainer", "reuse_compiled_models", "graph_key",
           "model_and_trainer"]

#: Prefix of the names of ``--clip-spikes``' optimizer state.
SPIKE_STATE = "clip_spikes."

#: What builds the compiled functions' graphs, for the keys of the function cache.
_SOURCES = [os.path.dirname(os.path.abspath(__file__))]

_UPDATE_RULES = {"graves_rmsprop": graves_rmsprop, "adam": lasagne_updates.adam,
                 "rmsprop": lasagne_updates.rmsprop}


class StepResult(NamedTuple):
    """What one training step returns.

    Attributes
    ----------
    loss : float
        The loss of the batch (see :func:`~utils.training.building.masked_loss`).
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
        A key of :data:`~utils.training.config.LEARNING_RATES`.
    learning_rate : float, optional
        Default: the optimizer's in :data:`~utils.training.config.LEARNING_RATES`.
        Assignable later (:attr:`learning_rate`, e.g. by a schedule): the rate is a shared
        variable of the compiled step, so the same step trains at the new rate, on the same
        parameters and optimizer state.
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
        :data:`~utils.training.config.SPIKE_AVERAGE_DECAY` (the first step is never
        rescaled). Applied before
        ``max_norm``; ``a`` and ``t`` are optimizer state (checkpointed, resumed).
    focus_penalty : float, optional
        Focus penalty (None: off): the gradients are those of the loss plus
        :math:`\\lambda (\\bar H_{\\mathrm{read}} + \\bar H_{\\mathrm{write}})`, where
        :math:`\\bar H` is the mean over the batch, the steps and the heads of a kind of the
        entropy of a head's weighting, :math:`H(w_t) = -\\sum_i w_t[i] \\ln w_t[i]` (0 on one
        location, :math:`\\ln N` spread evenly), and :math:`\\lambda` = ``focus_penalty``. It
        pulls every head onto one location at every step, where the loss alone leaves a head
        with nothing to do spread over the memory. The reported
        loss stays the task's. A trainer with it also has the plain loss's training step
        (``train_step(..., with_focus_penalty=False)``, compiled when first used), on the same
        parameters and optimizer state: a run can turn it on once the task is learned.
    mode : str, optional
        PyTensor mode (default: :data:`~utils.training.config.DEFAULT_MODE`).
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
        # Functions compiled later (e.g. details after a run) use the model's float type.
        self.floatX = pytensor.config.floatX
        # The step size as a variable of the step: a new rate needs no new step.
        self._learning_rate_var = pytensor.shared(np.asarray(1.0, dtype=self.floatX),
                                                  name="learning_rate")
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
        # The plain loss's updates and outputs, built first: their optimizer state variables
        # are the trainer's, which the penalised step's graph moves too.
        self._updates = self._outputs = None
        # Updates and outputs, and compiled training steps, by whether they are penalised.
        self._step_graphs = {}
        self._train_fns = {}
        self._predict_fn = self._details_fn = None

    @property
    def learning_rate(self):
        """The step size of the next training steps (float > 0; assignable: the compiled
        step trains at the new rate, as a step compiled with it as a constant would)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        problem = learning_rate_problem(value, self.floatX)
        if problem:
            raise ValueError(f"learning_rate: {problem}")
        self._learning_rate = float(value)
        self._learning_rate_var.set_value(np.asarray(value, dtype=self.floatX))

    # graph ---------------------------------------------------------------------------------

    def _build_updates(self):
        """The plain loss's updates, unless built already; their optimizer state variables
        are the trainer's."""
        if self._updates is None:
            with self._accelerated():
                self._updates, self._outputs = self._make_updates(False)
            self._step_graphs[False] = (self._updates, self._outputs)

    def _step_graph(self, penalised):
        """The updates and outputs of the step with or without the focus penalty, on the
        trainer's optimizer state."""
        key = penalised
        self._build_updates()
        if key not in self._step_graphs:
            with self._accelerated():
                updates, outputs = self._make_updates(penalised)
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

    def _make_updates(self, focus_penalty):
        """The updates of one training step and its outputs ``[loss, bits, grad_norm,
        updates_finite]``, with or without the focus penalty in the objective."""
        prediction = layers.get_output(self.model.l_output)
        loss, bits = masked_loss(prediction, self.target_var, self.mask_var, self.model.output)
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
        raw = _UPDATE_RULES[self.optimizer](grads, self.params,
                                            learning_rate=self._learning_rate_var)
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
        average = pytensor.shared(dtype(0.0), name=SPIKE_STATE + "grad_norm_average")
        steps = pytensor.shared(dtype(0.0), name=SPIKE_STATE + "steps")
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

    def is_compiled(self, with_focus_penalty=True):
        """Whether the training step :meth:`train_step` would take is compiled (it serves
        every learning rate)."""
        return self._penalised(with_focus_penalty) in self._train_fns

    def compile(self, with_focus_penalty=True):
        """Compile a training step now (otherwise it is compiled when first taken).

        Parameters
        ----------
        with_focus_penalty : bool
            With a ``focus_penalty``, compile the step with it (True) or the plain loss's.

        Returns
        -------
        float
            Seconds spent (0 when already compiled).
        """
        penalised = self._penalised(with_focus_penalty)
        if penalised in self._train_fns:
            return 0.0
        started = time.perf_counter()
        updates, outputs = self._step_graph(penalised)
        options = [self.optimizer, self.max_norm, self.grad_clip] \
            + ([] if self.spike_factor is None else [self.spike_factor])
        if penalised:
            name = "train_focus"
            options = options + [["focus_penalty", self.focus_penalty]]
        else:  # the graph and cache key of a trainer without the penalty
            name = "train"
        self._train_fns[penalised] = self._function(
            name, [self.model.l_input.input_var, self.target_var, self.mask_var], outputs,
            updates=updates,
            shared=self.all_params + self.optimizer_state + [self._learning_rate_var],
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
                key=[self.cache_key, options], shared=shared, sources=_SOURCES)
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
            self._train_fns[self._penalised(with_focus_penalty)](x, y, mask)
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

    def reset(self, parameter_values):
        """Start afresh: set the parameters and zero the optimizer state.

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

    # values --------------------------------------------------------------------------------

    def parameter_values(self):
        """``{name: array}`` of every parameter."""
        return OrderedDict((param.name, param.get_value()) for param in self.all_params)

    def optimizer_values(self):
        """``{name: array}`` of the optimizer state."""
        return OrderedDict((var.name, var.get_value()) for var in self.optimizer_state)

    def set_parameter_values(self, values):
        """Set every parameter from ``{name: array}`` (names and shapes must match)."""
        set_values(self.all_params, values, "parameters")

    def set_optimizer_values(self, values):
        """Set the optimizer state from ``{name: array}`` (names and shapes must match)."""
        set_values(self.optimizer_state, values, "optimizer state")



# --------------------------------------------------------------------------------------------
# Models kept with their compiled functions
# --------------------------------------------------------------------------------------------

_reusable_models = None


def reuse_compiled_models(enabled=True):
    """Keep the models :func:`utils.training.run` builds, with their compiled functions, for
    later runs.

    Compiling the NTM's training function takes seconds to minutes, the same for a tiny model
    as for a large one. When enabled, a later run in the same process whose network,
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


def graph_key(config, task, mode):
    """What decides a model's compiled training step: the values of
    :data:`~utils.training.config.GRAPH_OPTIONS`, the task's sizes, the mode and the float
    type (not the learning rate, a variable of the step, nor the focus penalty, which the
    trainer adds to the key of its own step)."""
    values = [listed(getattr(config, name)) for name in GRAPH_OPTIONS]
    return [values, task.input_size, task.output_size, mode, pytensor.config.floatX]


def model_and_trainer(config, task, mode):
    """The model the configuration describes, built with initial values from
    ``RandomState(config.seed)``, and its trainer; or a kept one, reset
    (:func:`reuse_compiled_models`).

    Returns
    -------
    model : Model
    trainer : Trainer
    """
    key = json.dumps([graph_key(config, task, mode), config.seed, config.focus_penalty])
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
                      config.grad_clip, mode, cache_key=graph_key(config, task, mode),
                      spike_factor=config.clip_spikes, focus_penalty=config.focus_penalty)
    if _reusable_models is not None:
        _reusable_models[key] = (model, trainer, trainer.parameter_values())
    return model, trainer
