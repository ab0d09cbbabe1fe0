r"""Recurrent layers: :class:`CustomRecurrentLayer`, :class:`RecurrentLayer`, :class:`LSTMLayer`
and :class:`GRULayer`, with :class:`Gate` to describe one gate's parameters.

Every layer takes a batch-major sequence of shape ``(batch, time, features...)`` and returns the
hidden state at each step, ``(batch, time, num_units)``, or only the last one,
``(batch, num_units)``, with ``only_return_final=True``. The recurrence is one
:func:`pytensor.scan` over time (or a Python loop with ``unroll_scan=True``).

Besides the sequence, a layer may take up to three more inputs, so every recurrent layer is a
:class:`~ntm.lasagne.layers.MergeLayer` over ``[incoming, mask_input, hid_init, cell_init]``
(the optional ones only when they are layers):

- ``mask_input`` gives a ``(batch, time)`` mask; where it is 0 the state (hidden and cell) is
  carried over unchanged, so sequences of different lengths can share a batch (pad at the end);
- ``hid_init`` (and ``cell_init`` for the LSTM) may be a layer giving ``(batch, num_units)``
  initial states; otherwise they are parameters of shape ``(1, num_units)`` repeated over the
  batch, trainable only with ``learn_init=True``.
"""
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import grad_clip

from .. import init, nonlinearities
from ..utils import unique
from .base import Layer, MergeLayer
from .dense import DenseLayer
from .helper import get_all_layers, get_all_params, get_output
from .input import InputLayer

__all__ = ["CustomRecurrentLayer", "RecurrentLayer", "Gate", "LSTMLayer", "GRULayer"]


def _check_positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _inner_output(layer, input, **kwargs):
    """``get_output`` of a sub-network, without repeating the unused-kwargs warning.

    The outer :func:`get_output` already reports keyword arguments no layer accepts.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"get_output\(\) was called with unused kwargs")
        return get_output(layer, input, **kwargs)


class _RecurrentBase(MergeLayer):
    """What every recurrent layer shares: its extra inputs, initial states and the time loop.

    Subclasses call :meth:`_setup_states` after creating their weights (so that parameters keep
    Lasagne's order), and implement :meth:`get_output_for` with :meth:`_run`.
    """

    def __init__(self, incoming, mask_input, hid_init, cell_init, backwards, learn_init,
                 gradient_steps, grad_clipping, unroll_scan, precompute_input,
                 only_return_final, **kwargs):
        # Extra inputs are layers after the sequence, in a fixed order; the indices say where.
        incomings = [incoming]
        self.mask_incoming_index = -1
        self.hid_init_incoming_index = -1
        self.cell_init_incoming_index = -1
        if mask_input is not None:
            if not isinstance(mask_input, Layer):
                raise TypeError(f"mask_input must be a Layer giving a (batch, time) mask, "
                                f"got {mask_input!r}")
            incomings.append(mask_input)
            self.mask_incoming_index = len(incomings) - 1
        if isinstance(hid_init, Layer):
            incomings.append(hid_init)
            self.hid_init_incoming_index = len(incomings) - 1
        if isinstance(cell_init, Layer):
            incomings.append(cell_init)
            self.cell_init_incoming_index = len(incomings) - 1
        super().__init__(incomings, **kwargs)

        input_shape = self.input_shapes[0]
        if len(input_shape) < 3:
            raise ValueError(f"{type(self).__name__} needs an input of shape "
                             f"(batch, time, features...), got incoming shape {input_shape}")
        if mask_input is not None and len(self.input_shapes[self.mask_incoming_index]) != 2:
            raise ValueError(f"mask_input must give a (batch, time) mask, but its output shape is "
                             f"{self.input_shapes[self.mask_incoming_index]}")
        if isinstance(gradient_steps, bool) or not isinstance(gradient_steps, (int, np.integer)) \
                or (gradient_steps <= 0 and gradient_steps != -1):
            raise ValueError(f"gradient_steps must be -1 (full backpropagation through time) or "
                             f"a positive int, got {gradient_steps!r}")
        if not np.isscalar(grad_clipping) or grad_clipping < 0:
            raise ValueError(f"grad_clipping must be a number >= 0 (0 for no clipping), "
                             f"got {grad_clipping!r}")
        if unroll_scan and gradient_steps != -1:
            raise ValueError("gradient_steps must be -1 when unroll_scan is True "
                             f"(got gradient_steps={gradient_steps})")
        if unroll_scan and input_shape[1] is None:
            raise ValueError("unroll_scan=True needs a known sequence length, but incoming has "
                             f"shape {input_shape} with time axis None")
        self.backwards = bool(backwards)
        self.learn_init = bool(learn_init)
        self.gradient_steps = int(gradient_steps)
        self.grad_clipping = grad_clipping
        self.unroll_scan = bool(unroll_scan)
        self.precompute_input = bool(precompute_input)
        self.only_return_final = bool(only_return_final)

    def _init_state(self, spec, shape, name, incoming_index):
        """A parameter of ``(1,) + shape`` for ``spec``, unless the state comes from a layer."""
        if incoming_index > 0:
            given = self.input_shapes[incoming_index]
            expected = (None,) + tuple(shape)
            if len(given) != len(expected) or any(
                    g is not None and e is not None and g != e for g, e in zip(given, expected)):
                raise ValueError(f"{name} layer must give shape {expected} (batch first), "
                                 f"but its output shape is {given}")
            return None
        # Not trainable unless asked for; never regularized (it is a state, not a weight).
        return self.add_param(spec, (1,) + tuple(shape), name=name,
                              trainable=self.learn_init, regularizable=False)

    @staticmethod
    def _clip(x, bound):
        return grad_clip(x, -bound, bound) if bound else x

    def _initial(self, inputs, param, incoming_index, num_batch):
        if incoming_index > 0:
            return inputs[incoming_index]
        # One row for the whole batch: repeat it (a product keeps it differentiable).
        ones = pt.ones((num_batch, 1), dtype=param.dtype)
        initial = pt.tensordot(ones, param, axes=[[1], [0]])
        if any(size == 1 for size in initial.type.shape[1:]):
            # A state of one unit would otherwise have a static size of 1 that the gradient's
            # scan does not keep; adding zeros of a symbolic size makes it an ordinary size.
            sizes = [initial.shape[d] + num_batch * 0 for d in range(1, initial.ndim)]
            initial = initial + pt.zeros([num_batch] + sizes, dtype=param.dtype)
        return initial

    def _time_major(self, inputs):
        """The sequence as ``(time, batch, ...)`` and the mask as ``(time, batch)`` (or None)."""
        input = pt.as_tensor_variable(inputs[0])
        input = input.dimshuffle((1, 0) + tuple(range(2, input.ndim)))
        mask = None
        if self.mask_incoming_index > 0:
            mask = pt.as_tensor_variable(inputs[self.mask_incoming_index]).dimshuffle(1, 0)
        return input, mask

    def _run(self, step, input, mask, initial_states, output_index=-1):
        """Apply ``step(input_t, *states) -> new states`` over time.

        Returns the states at ``output_index`` arranged as the layer's output: batch-major and in
        the input's time order, or only the final state.
        """
        if mask is None:
            fn = step
            sequences = [input]
        else:
            def fn(input_n, mask_n, *previous):
                new = step(input_n, *previous)
                # Where the mask is 0 (padding) keep the previous state.
                return [pt.switch(pt.shape_padright(mask_n, p.ndim - 1), n, p)
                        for n, p in zip(new, previous)]
            sequences = [input, mask]

        if self.unroll_scan:
            length = self.input_shapes[0][1]
            order = range(length - 1, -1, -1) if self.backwards else range(length)
            states = list(initial_states)
            history = [[] for _ in states]
            for t in order:  # processing order, as scan returns it
                states = list(fn(*[s[t] for s in sequences], *states))
                for h, s in zip(history, states):
                    h.append(s)
            outputs = [pt.stack(h) for h in history]
        else:
            # strict=False lets nonlinearities or sub-layers use shared variables of their own.
            outputs = pytensor.scan(fn, sequences=sequences, outputs_info=list(initial_states),
                                    go_backwards=self.backwards,
                                    truncate_gradient=self.gradient_steps, strict=False,
                                    return_list=True, return_updates=False)
        out = outputs[output_index]
        if self.only_return_final:
            return out[-1]
        out = out.dimshuffle((1, 0) + tuple(range(2, out.ndim)))
        if self.backwards:
            out = out[:, ::-1]  # back to the input's time order
        return out

    def _hidden_shape(self):
        raise NotImplementedError()

    def get_output_shape_for(self, input_shapes):
        input_shape = input_shapes[0]
        if self.only_return_final:
            return (input_shape[0],) + self._hidden_shape()
        return (input_shape[0], input_shape[1]) + self._hidden_shape()


class CustomRecurrentLayer(_RecurrentBase):
    r"""A recurrent layer whose input and hidden connections are arbitrary layers.

    .. math::
        h_t = \varphi\bigl(f_i(x_t) + f_h(h_{t-1})\bigr)

    Parameters
    ----------
    incoming : Layer or tuple
        The sequence, of shape ``(batch, time, ...)``.
    input_to_hidden : Layer
        :math:`f_i`: a network ending in one :class:`InputLayer` of shape ``(None,) +
        incoming_shape[2:]``. With ``precompute_input`` it is applied to all time steps at once
        (batch and time merged into its first axis), otherwise to one step's ``(batch, ...)``.
    hidden_to_hidden : Layer
        :math:`f_h`: a network ending in one :class:`InputLayer` whose shape (after the batch
        axis) equals its own output shape, the shape of the hidden state.
    nonlinearity : callable or None
        :math:`\varphi`; ``None`` means linear.
    hid_init : initializer, array, shared variable or Layer
        :math:`h_0`: a parameter of shape ``(1,) + hidden_shape`` or a layer giving
        ``(batch,) + hidden_shape``.
    backwards : bool
        Process the sequence from its end; the output is still in the input's time order.
    learn_init : bool
        Make ``hid_init`` (when it is a parameter) trainable.
    gradient_steps : int
        Truncate backpropagation through time to this many steps; -1 for no truncation.
    grad_clipping : float
        If nonzero, the gradient through :math:`\varphi`'s argument is clipped to
        :math:`[-\mathrm{grad\_clipping}, \mathrm{grad\_clipping}]` (the forward pass is
        unchanged).
    unroll_scan : bool
        Build a Python loop over the (known) sequence length instead of a scan.
    precompute_input : bool
        Apply :math:`f_i` to all time steps before the loop (faster, more memory).
    mask_input : Layer, optional
        A layer giving a ``(batch, time)`` mask; where it is 0 the state is carried over.
    only_return_final : bool
        Return only the final state, ``(batch,) + hidden_shape``.
    **kwargs
        ``name``.

    Raises
    ------
    ValueError
        If the sub-networks' shapes do not fit together, or an option is invalid.
    """

    def __init__(self, incoming, input_to_hidden, hidden_to_hidden,
                 nonlinearity=nonlinearities.rectify, hid_init=init.Constant(0.0),
                 backwards=False, learn_init=False, gradient_steps=-1, grad_clipping=0,
                 unroll_scan=False, precompute_input=True, mask_input=None,
                 only_return_final=False, **kwargs):
        super().__init__(incoming, mask_input, hid_init, None, backwards, learn_init,
                         gradient_steps, grad_clipping, unroll_scan, precompute_input,
                         only_return_final, **kwargs)
        for what, layer in (("input_to_hidden", input_to_hidden),
                            ("hidden_to_hidden", hidden_to_hidden)):
            if not isinstance(layer, Layer):
                raise TypeError(f"{what} must be a Layer, got {layer!r}")
        self.input_to_hidden = input_to_hidden
        self.hidden_to_hidden = hidden_to_hidden
        in_to_hid_shape = tuple(input_to_hidden.output_shape)
        hid_to_hid_shape = tuple(hidden_to_hidden.output_shape)
        n_batch, n_steps = self.input_shapes[0][:2]
        if precompute_input:
            # input_to_hidden then sees all time steps at once, as one batch
            if None not in (in_to_hid_shape[0], n_batch, n_steps) \
                    and in_to_hid_shape[0] != n_batch * n_steps:
                raise ValueError(f"with precompute_input=True, input_to_hidden must take a batch "
                                 f"of None or batch * time = {n_batch * n_steps} entries, but its "
                                 f"output shape is {in_to_hid_shape}")
        elif None not in (in_to_hid_shape[0], hid_to_hid_shape[0]) \
                and in_to_hid_shape[0] != hid_to_hid_shape[0]:
            raise ValueError(f"with precompute_input=False, input_to_hidden and hidden_to_hidden "
                             f"must take the same batch size, got output shapes "
                             f"{in_to_hid_shape} and {hid_to_hid_shape}")
        if in_to_hid_shape[1:] != hid_to_hid_shape[1:]:
            raise ValueError(f"input_to_hidden and hidden_to_hidden must give the same shape "
                             f"after the batch axis, got {in_to_hid_shape} and {hid_to_hid_shape}")
        hid_inputs = [l for l in get_all_layers(hidden_to_hidden) if isinstance(l, InputLayer)]
        if len(hid_inputs) != 1:
            raise ValueError(f"hidden_to_hidden must end in exactly one InputLayer, "
                             f"found {len(hid_inputs)}")
        if tuple(hid_inputs[0].output_shape[1:]) != hid_to_hid_shape[1:]:
            raise ValueError(f"hidden_to_hidden's InputLayer shape {hid_inputs[0].output_shape} "
                             f"must match its output shape {hid_to_hid_shape} after the batch axis")
        if any(s is None for s in hid_to_hid_shape[1:]):
            raise ValueError(f"the hidden state's shape must be known, got {hid_to_hid_shape}")
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.hid_init = self._init_state(hid_init, hid_to_hid_shape[1:], "hid_init",
                                         self.hid_init_incoming_index)

    def _hidden_shape(self):
        return tuple(self.hidden_to_hidden.output_shape[1:])

    def get_params(self, unwrap_shared=True, **tags):
        # The sub-networks' parameters belong to this layer too.
        params = super().get_params(unwrap_shared=unwrap_shared, **tags)
        params += get_all_params(self.input_to_hidden, unwrap_shared=unwrap_shared, **tags)
        params += get_all_params(self.hidden_to_hidden, unwrap_shared=unwrap_shared, **tags)
        return unique(params)

    def get_output_for(self, inputs, **kwargs):
        """The hidden states for ``inputs`` = [sequence, mask?, hid_init?]."""
        input, mask = self._time_major(inputs)
        seq_len, num_batch = input.shape[0], input.shape[1]
        if self.precompute_input:
            # Merge time and batch so that f_i sees one big batch, then split them again.
            flat = input.reshape((seq_len * num_batch,) + tuple(input.shape[2:]),
                                 ndim=input.ndim - 1)
            flat = _inner_output(self.input_to_hidden, flat, **kwargs)
            input = flat.reshape((seq_len, num_batch) + tuple(flat.shape[1:]), ndim=flat.ndim + 1)

        def step(input_n, hid_previous):
            hid_pre = _inner_output(self.hidden_to_hidden, hid_previous, **kwargs)
            if not self.precompute_input:
                input_n = _inner_output(self.input_to_hidden, input_n, **kwargs)
            hid_pre = self._clip(hid_pre + input_n, self.grad_clipping)
            return [self.nonlinearity(hid_pre)]

        hid_init = self._initial(inputs, self.hid_init, self.hid_init_incoming_index, num_batch)
        return self._run(step, input, mask, [hid_init])


class RecurrentLayer(CustomRecurrentLayer):
    r"""A fully connected ("vanilla") recurrent layer.

    .. math::
        h_t = \varphi(x_t W_{xh} + h_{t-1} W_{hh} + b)

    Trailing input axes beyond ``(batch, time)`` are flattened into the features. The weights
    live in two inner :class:`DenseLayer` s named ``input_to_hidden`` (``W``, ``b``) and
    ``hidden_to_hidden`` (``W``), and are also available as :attr:`W_in_to_hid`,
    :attr:`W_hid_to_hid` and :attr:`b`.

    Parameters
    ----------
    incoming : Layer or tuple
        The sequence, of shape ``(batch, time, features...)`` with known feature sizes.
    num_units : int
        Number of hidden units.
    W_in_to_hid : initializer, array or shared variable
        :math:`W_{xh}`, shape ``(num_inputs, num_units)``.
    W_hid_to_hid : initializer, array or shared variable
        :math:`W_{hh}`, shape ``(num_units, num_units)``.
    b : initializer, array, shared variable or None
        :math:`b`, shape ``(num_units,)``; ``None`` for no bias.
    nonlinearity : callable or None
        :math:`\varphi`; ``None`` means linear.
    hid_init, backwards, learn_init, gradient_steps, grad_clipping
        As for :class:`CustomRecurrentLayer`.
    unroll_scan, precompute_input, mask_input, only_return_final
        As for :class:`CustomRecurrentLayer`.
    **kwargs
        ``name``.
    """

    def __init__(self, incoming, num_units, W_in_to_hid=init.Uniform(),
                 W_hid_to_hid=init.Uniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, hid_init=init.Constant(0.0),
                 backwards=False, learn_init=False, gradient_steps=-1, grad_clipping=0,
                 unroll_scan=False, precompute_input=True, mask_input=None,
                 only_return_final=False, **kwargs):
        num_units = _check_positive_int(num_units, "num_units")
        input_shape = incoming if isinstance(incoming, tuple) else incoming.output_shape
        if len(input_shape) < 3:
            raise ValueError(f"RecurrentLayer needs an input of shape (batch, time, features...), "
                             f"got incoming shape {tuple(input_shape)}")
        if any(s is None for s in input_shape[2:]):
            raise ValueError(f"RecurrentLayer needs known feature sizes, got incoming shape "
                             f"{tuple(input_shape)}")
        name = kwargs.get("name")
        prefix = f"{name}." if name else ""
        in_to_hid = DenseLayer(InputLayer((None,) + tuple(input_shape[2:])), num_units,
                               W=W_in_to_hid, b=b, nonlinearity=None,
                               name=prefix + "input_to_hidden")
        hid_to_hid = DenseLayer(InputLayer((None, num_units)), num_units, W=W_hid_to_hid, b=None,
                                nonlinearity=None, name=prefix + "hidden_to_hidden")
        self.W_in_to_hid = in_to_hid.W
        self.W_hid_to_hid = hid_to_hid.W
        self.b = in_to_hid.b
        self.num_units = num_units
        super().__init__(incoming, in_to_hid, hid_to_hid, nonlinearity=nonlinearity,
                         hid_init=hid_init, backwards=backwards, learn_init=learn_init,
                         gradient_steps=gradient_steps, grad_clipping=grad_clipping,
                         unroll_scan=unroll_scan, precompute_input=precompute_input,
                         mask_input=mask_input, only_return_final=only_return_final, **kwargs)


class Gate:
    r"""The parameters of one gate of an :class:`LSTMLayer` or :class:`GRULayer`.

    A gate computes :math:`g_t = \varphi(x_t W_{in} + h_{t-1} W_{hid} + w_{cell} \odot c + b)`;
    the peephole term :math:`w_{cell} \odot c` (a diagonal connection from the cell) is used by
    the LSTM only.

    Parameters
    ----------
    W_in : initializer, array or shared variable
        Input weights, shape ``(num_inputs, num_units)``.
    W_hid : initializer, array or shared variable
        Hidden-to-gate weights, shape ``(num_units, num_units)``.
    W_cell : initializer, array, shared variable or None
        Peephole weights, shape ``(num_units,)``; ``None`` for no peephole.
    b : initializer, array or shared variable
        Bias, shape ``(num_units,)``.
    nonlinearity : callable or None
        :math:`\varphi`; ``None`` means linear.
    """

    def __init__(self, W_in=init.Normal(0.1), W_hid=init.Normal(0.1), W_cell=init.Normal(0.1),
                 b=init.Constant(0.0), nonlinearity=nonlinearities.sigmoid):
        self.W_in = W_in
        self.W_hid = W_hid
        if W_cell is not None:  # left unset otherwise, so that a missing peephole shows
            self.W_cell = W_cell
        self.b = b
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity

    def __repr__(self):
        peephole = "with" if hasattr(self, "W_cell") else "without"
        nonlinearity = getattr(self.nonlinearity, "__name__", self.nonlinearity)
        return f"Gate({peephole} peephole, nonlinearity={nonlinearity})"


class _GatedBase(_RecurrentBase):
    """Gate parameters for the LSTM and GRU: created per gate, used stacked."""

    def _setup_gates(self, num_units, gates):
        input_shape = self.input_shapes[0]
        if any(s is None for s in input_shape[2:]):
            raise ValueError(f"{type(self).__name__} needs known feature sizes, got incoming "
                             f"shape {input_shape}")
        self.num_units = _check_positive_int(num_units, "num_units")
        num_inputs = int(np.prod(input_shape[2:]))
        for gate_name, gate in gates:
            for attr in ("W_in", "W_hid", "b", "nonlinearity"):
                if not hasattr(gate, attr):
                    raise TypeError(f"{gate_name} must be a Gate, got {gate!r} (no {attr})")
            setattr(self, f"W_in_to_{gate_name}",
                    self.add_param(gate.W_in, (num_inputs, self.num_units),
                                   name=f"W_in_to_{gate_name}"))
            setattr(self, f"W_hid_to_{gate_name}",
                    self.add_param(gate.W_hid, (self.num_units, self.num_units),
                                   name=f"W_hid_to_{gate_name}"))
            setattr(self, f"b_{gate_name}",
                    self.add_param(gate.b, (self.num_units,), name=f"b_{gate_name}",
                                   regularizable=False))
            setattr(self, f"nonlinearity_{gate_name}",
                    nonlinearities.identity if gate.nonlinearity is None else gate.nonlinearity)
        self._gate_names = [gate_name for gate_name, _ in gates]

    def _stacked(self):
        """Input weights, hidden weights and biases of all gates side by side, in gate order.

        One product per input then gives every gate's pre-activation at once.
        """
        names = self._gate_names
        W_in = pt.concatenate([getattr(self, f"W_in_to_{n}") for n in names], axis=1)
        W_hid = pt.concatenate([getattr(self, f"W_hid_to_{n}") for n in names], axis=1)
        b = pt.concatenate([getattr(self, f"b_{n}") for n in names], axis=0)
        return W_in, W_hid, b

    def _slice(self, x, k):
        return x[:, k * self.num_units:(k + 1) * self.num_units]

    def _hidden_shape(self):
        return (self.num_units,)

    def _prepare(self, inputs):
        """Time-major sequence (features flattened, input product precomputed if asked)."""
        input, mask = self._time_major(inputs)
        if input.ndim > 3:
            input = input.flatten(3)
        W_in, W_hid, b = self._stacked()
        if self.precompute_input:
            input = pt.dot(input, W_in) + b  # every step's input term in one product
        return input, mask, W_in, W_hid, b


class LSTMLayer(_GatedBase):
    r"""A long short-term memory layer with optional diagonal peepholes.

    With :math:`\sigma` the gates' nonlinearities (sigmoid by default), the step is

    .. math::
        i_t &= \sigma_i(x_t W_{xi} + h_{t-1} W_{hi} + w_{ci} \odot c_{t-1} + b_i) \\
        f_t &= \sigma_f(x_t W_{xf} + h_{t-1} W_{hf} + w_{cf} \odot c_{t-1} + b_f) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot \sigma_c(x_t W_{xc} + h_{t-1} W_{hc} + b_c) \\
        o_t &= \sigma_o(x_t W_{xo} + h_{t-1} W_{ho} + w_{co} \odot c_t + b_o) \\
        h_t &= o_t \odot \varphi(c_t)

    where the peephole terms :math:`w \odot c` are elementwise and dropped when
    ``peepholes=False``, :math:`\sigma_c` is the cell gate's nonlinearity (tanh) and
    :math:`\varphi` is ``nonlinearity``. The output is :math:`h_t`.

    Parameters are named ``W_in_to_<gate>``, ``W_hid_to_<gate>`` and ``b_<gate>`` for gate in
    ``ingate``, ``forgetgate``, ``cell`` and ``outgate``; ``W_cell_to_ingate``,
    ``W_cell_to_forgetgate`` and ``W_cell_to_outgate`` (vectors) with peepholes; and
    ``cell_init`` and ``hid_init``.

    Parameters
    ----------
    incoming : Layer or tuple
        The sequence, of shape ``(batch, time, features...)`` with known feature sizes
        (trailing axes are flattened).
    num_units : int
        Number of hidden (and cell) units.
    ingate, forgetgate, cell, outgate : Gate
        Initializers and nonlinearities of the input gate, forget gate, cell input and output
        gate. With peepholes, ``ingate``, ``forgetgate`` and ``outgate`` need a ``W_cell``.
    nonlinearity : callable or None
        :math:`\varphi`, applied to the cell for the output; ``None`` means linear.
    cell_init, hid_init : initializer, array, shared variable or Layer
        :math:`c_0` and :math:`h_0`: parameters of shape ``(1, num_units)`` or layers giving
        ``(batch, num_units)``.
    backwards : bool
        Process the sequence from its end; the output is still in the input's time order.
    learn_init : bool
        Make ``cell_init`` and ``hid_init`` (when parameters) trainable.
    peepholes : bool
        Use the diagonal peephole connections from the cell to the gates.
    gradient_steps : int
        Truncate backpropagation through time to this many steps; -1 for no truncation.
    grad_clipping : float
        If nonzero, clip the gradient through the gates' pre-activations to
        :math:`[-\mathrm{grad\_clipping}, \mathrm{grad\_clipping}]` (the forward pass is
        unchanged).
    unroll_scan : bool
        Build a Python loop over the (known) sequence length instead of a scan.
    precompute_input : bool
        Compute :math:`x_t W_x + b` for all time steps before the loop, in one product.
    mask_input : Layer, optional
        A layer giving a ``(batch, time)`` mask; where it is 0 the cell and hidden states are
        carried over unchanged.
    only_return_final : bool
        Return only the final hidden state, ``(batch, num_units)``.
    **kwargs
        ``name``.

    Raises
    ------
    ValueError
        For a non-positive ``num_units``, an input that is not a sequence, a missing peephole
        weight, or an invalid option.
    """

    def __init__(self, incoming, num_units, ingate=Gate(), forgetgate=Gate(),
                 cell=Gate(W_cell=None, nonlinearity=nonlinearities.tanh), outgate=Gate(),
                 nonlinearity=nonlinearities.tanh, cell_init=init.Constant(0.0),
                 hid_init=init.Constant(0.0), backwards=False, learn_init=False, peepholes=True,
                 gradient_steps=-1, grad_clipping=0, unroll_scan=False, precompute_input=True,
                 mask_input=None, only_return_final=False, **kwargs):
        super().__init__(incoming, mask_input, hid_init, cell_init, backwards, learn_init,
                         gradient_steps, grad_clipping, unroll_scan, precompute_input,
                         only_return_final, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.peepholes = bool(peepholes)
        self._setup_gates(num_units, [("ingate", ingate), ("forgetgate", forgetgate),
                                                ("cell", cell), ("outgate", outgate)])
        if self.peepholes:
            for gate_name, gate in (("ingate", ingate), ("forgetgate", forgetgate),
                                    ("outgate", outgate)):
                if getattr(gate, "W_cell", None) is None:
                    raise ValueError(f"peepholes=True needs a W_cell for {gate_name}, but it was "
                                     "given W_cell=None (pass peepholes=False for none)")
                setattr(self, f"W_cell_to_{gate_name}",
                        self.add_param(gate.W_cell, (self.num_units,),
                                       name=f"W_cell_to_{gate_name}"))
        self.cell_init = self._init_state(cell_init, (self.num_units,), "cell_init",
                                          self.cell_init_incoming_index)
        self.hid_init = self._init_state(hid_init, (self.num_units,), "hid_init",
                                         self.hid_init_incoming_index)

    def get_output_for(self, inputs, **kwargs):
        """The hidden states for ``inputs`` = [sequence, mask?, hid_init?, cell_init?]."""
        input, mask, W_in, W_hid, b = self._prepare(inputs)
        num_batch = input.shape[1]
        clip = self.grad_clipping

        def step(input_n, cell_previous, hid_previous):
            if not self.precompute_input:
                input_n = pt.dot(input_n, W_in) + b
            gates = self._clip(input_n + pt.dot(hid_previous, W_hid), clip)
            ingate = self._slice(gates, 0)
            forgetgate = self._slice(gates, 1)
            cell_input = self._slice(gates, 2)
            outgate = self._slice(gates, 3)
            if self.peepholes:
                ingate = ingate + cell_previous * self.W_cell_to_ingate
                forgetgate = forgetgate + cell_previous * self.W_cell_to_forgetgate
            ingate = self.nonlinearity_ingate(ingate)
            forgetgate = self.nonlinearity_forgetgate(forgetgate)
            cell_input = self.nonlinearity_cell(cell_input)
            cell = forgetgate * cell_previous + ingate * cell_input
            if self.peepholes:
                outgate = outgate + cell * self.W_cell_to_outgate  # peeks at the new cell
            outgate = self.nonlinearity_outgate(outgate)
            hid = outgate * self.nonlinearity(cell)
            return [cell, hid]

        cell_init = self._initial(inputs, self.cell_init, self.cell_init_incoming_index,
                                  num_batch)
        hid_init = self._initial(inputs, self.hid_init, self.hid_init_incoming_index, num_batch)
        return self._run(step, input, mask, [cell_init, hid_init], output_index=1)


class GRULayer(_GatedBase):
    r"""A gated recurrent unit layer (Cho et al. 2014).

    .. math::
        r_t &= \sigma_r(x_t W_{xr} + h_{t-1} W_{hr} + b_r) \\
        u_t &= \sigma_u(x_t W_{xu} + h_{t-1} W_{hu} + b_u) \\
        c_t &= \sigma_c(x_t W_{xc} + r_t \odot (h_{t-1} W_{hc}) + b_c) \\
        h_t &= (1 - u_t) \odot h_{t-1} + u_t \odot c_t

    with :math:`\sigma_r, \sigma_u` sigmoid and :math:`\sigma_c` tanh by default. Parameters are
    named ``W_in_to_<gate>``, ``W_hid_to_<gate>`` and ``b_<gate>`` for gate in ``resetgate``,
    ``updategate`` and ``hidden_update``; and ``hid_init``.

    Parameters
    ----------
    incoming : Layer or tuple
        The sequence, of shape ``(batch, time, features...)`` with known feature sizes
        (trailing axes are flattened).
    num_units : int
        Number of hidden units.
    resetgate, updategate, hidden_update : Gate
        Initializers and nonlinearities of :math:`r`, :math:`u` and :math:`c` (their ``W_cell``
        is ignored).
    hid_init : initializer, array, shared variable or Layer
        :math:`h_0`: a parameter of shape ``(1, num_units)`` or a layer giving
        ``(batch, num_units)``.
    backwards : bool
        Process the sequence from its end; the output is still in the input's time order.
    learn_init : bool
        Make ``hid_init`` (when a parameter) trainable.
    gradient_steps : int
        Truncate backpropagation through time to this many steps; -1 for no truncation.
    grad_clipping : float
        If nonzero, clip the gradient through the pre-activations (the input and hidden terms
        and :math:`c_t`'s argument) to :math:`[-\mathrm{grad\_clipping}, \mathrm{grad\_clipping}]`
        (the forward pass is unchanged).
    unroll_scan : bool
        Build a Python loop over the (known) sequence length instead of a scan.
    precompute_input : bool
        Compute :math:`x_t W_x + b` for all time steps before the loop, in one product.
    mask_input : Layer, optional
        A layer giving a ``(batch, time)`` mask; where it is 0 the state is carried over.
    only_return_final : bool
        Return only the final hidden state, ``(batch, num_units)``.
    **kwargs
        ``name``.
    """

    def __init__(self, incoming, num_units, resetgate=Gate(W_cell=None),
                 updategate=Gate(W_cell=None),
                 hidden_update=Gate(W_cell=None, nonlinearity=nonlinearities.tanh),
                 hid_init=init.Constant(0.0), backwards=False, learn_init=False,
                 gradient_steps=-1, grad_clipping=0, unroll_scan=False, precompute_input=True,
                 mask_input=None, only_return_final=False, **kwargs):
        super().__init__(incoming, mask_input, hid_init, None, backwards, learn_init,
                         gradient_steps, grad_clipping, unroll_scan, precompute_input,
                         only_return_final, **kwargs)
        self._setup_gates(num_units, [("resetgate", resetgate),
                                                ("updategate", updategate),
                                                ("hidden_update", hidden_update)])
        # Lasagne's name for the candidate's nonlinearity.
        self.nonlinearity_hid = self.nonlinearity_hidden_update
        self.hid_init = self._init_state(hid_init, (self.num_units,), "hid_init",
                                         self.hid_init_incoming_index)

    def get_output_for(self, inputs, **kwargs):
        """The hidden states for ``inputs`` = [sequence, mask?, hid_init?]."""
        input, mask, W_in, W_hid, b = self._prepare(inputs)
        num_batch = input.shape[1]
        clip = self.grad_clipping

        def step(input_n, hid_previous):
            if not self.precompute_input:
                input_n = pt.dot(input_n, W_in) + b
            hid_input = pt.dot(hid_previous, W_hid)
            input_n = self._clip(input_n, clip)
            hid_input = self._clip(hid_input, clip)
            resetgate = self.nonlinearity_resetgate(
                self._slice(input_n, 0) + self._slice(hid_input, 0))
            updategate = self.nonlinearity_updategate(
                self._slice(input_n, 1) + self._slice(hid_input, 1))
            # The reset gate scales the hidden term only, after its product (Cho et al.'s form).
            candidate = self._slice(input_n, 2) + resetgate * self._slice(hid_input, 2)
            candidate = self.nonlinearity_hidden_update(self._clip(candidate, clip))
            hid = (1.0 - updategate) * hid_previous + updategate * candidate
            return [hid]

        hid_init = self._initial(inputs, self.hid_init, self.hid_init_incoming_index, num_batch)
        return self._run(step, input, mask, [hid_init])
