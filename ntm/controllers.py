r"""Controllers: the network that reads the input and the read vectors and drives the heads.

Every controller maps, at time :math:`t`, the input :math:`x_t`, the read vectors
:math:`r_t = (r_t^1, \dots, r_t^R)` (flattened to :math:`R \cdot M` values) and its previous
output :math:`h_{t-1}` and state to :math:`h_t` and its new state. The input's contribution
(:math:`x_t W_{in} + b`) depends on no recurrent quantity, so :class:`~ntm.layers.NTMLayer`
computes it for all time steps with one product before the scan (:meth:`project_input`), and
the step only adds the recurrent terms.
"""
import numpy as np
import pytensor.tensor as pt

from .lasagne import init, nonlinearities
from .lasagne.layers.base import Layer
from .memory import check_memory_shape

__all__ = ["Controller", "DenseController", "RecurrentController", "LSTMController",
           "GRUController"]


class Controller(Layer):
    """Base class of the controllers.

    Parameters
    ----------
    incoming : Layer or tuple
        The NTM's input, of shape ``(batch, time, num_inputs)``.
    memory_shape : tuple of int
        ``(N, M)``; must match the :class:`~ntm.memory.Memory` and the heads.
    num_units : int
        Size of the controller's output :math:`h_t`.
    num_reads : int
        Number of read heads whose read vectors the controller receives.
    hid_init : initializer, array or shared variable
        :math:`h_0`, of shape ``(1, num_units)``.
    learn_init : bool
        Whether the initial hidden (and cell) state is trained.

    Subclasses define :attr:`state_size`, :meth:`project_input` and :meth:`step`.
    """

    #: size of the state carried beside :math:`h_t` (the LSTM's cell), 0 when the state is h.
    state_size = 0

    def __init__(self, incoming, memory_shape, num_units, num_reads,
                 hid_init=init.Constant(0.0), learn_init=False, **kwargs):
        super().__init__(incoming, **kwargs)
        who = self.__class__.__name__
        if len(self.input_shape) != 3:
            raise ValueError(f"{who}: the input must have shape (batch, time, features), got "
                             f"{self.input_shape} ({len(self.input_shape)} dimensions)")
        if self.input_shape[-1] is None:
            raise ValueError(f"{who}: the number of input features must be known, got input "
                             f"shape {self.input_shape}")
        self.memory_shape = check_memory_shape(memory_shape, who)
        for name, value, minimum in (("num_units", num_units, 1), ("num_reads", num_reads, 0)):
            if not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
        self.num_inputs = self.input_shape[-1]
        self.num_units, self.num_reads = int(num_units), int(num_reads)
        self.learn_init = learn_init
        self.hid_init = self.add_param(hid_init, (1, self.num_units), name="hid_init",
                                       trainable=learn_init, regularizable=False)

    @property
    def num_read_inputs(self):
        """:math:`R \\cdot M`, the size of the flattened read vectors."""
        return self.num_reads * self.memory_shape[1]

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.num_units)

    def outputs_info(self, batch_size):
        """Initial ``[hidden, state]`` for a batch, each ``(batch_size, size)``."""
        hidden = pt.repeat(self.hid_init, batch_size, axis=0)
        return [hidden, hidden]

    def project_input(self, input):
        """The input's contribution to the step, for any number of leading axes."""
        raise NotImplementedError()

    def step(self, input, reads, hidden, state, input_projected=False):
        """One step: ``(hidden, state)`` at time t from the input, read vectors and the previous
        ``hidden`` and ``state``.

        Parameters
        ----------
        input : tensor ``(batch, num_inputs)``, or the output of :meth:`project_input` when
            ``input_projected`` is True.
        reads : tensor ``(batch, num_reads, M)`` or ``(batch, num_reads * M)``
        hidden, state : tensors ``(batch, num_units)`` and ``(batch, state size)``
        """
        raise NotImplementedError()

    def _flat_reads(self, reads):
        return reads.reshape((reads.shape[0], self.num_read_inputs)) if reads.ndim == 3 else reads

    def _projected(self, input, input_projected):
        return input if input_projected else self.project_input(input)


class DenseController(Controller):
    r"""A feed-forward controller:

    .. math::
        h_t = \varphi(x_t W_{in} + b_{in} + r_t W_{reads} + b_{reads})

    Parameters
    ----------
    incoming, memory_shape, num_units, num_reads, hid_init, learn_init
        See :class:`Controller`.
    W_in_to_hid, b_in_to_hid, W_reads_to_hid, b_reads_to_hid
        Initializers (or values) of the weights and biases.
    nonlinearity : callable
        :math:`\varphi` (rectify by default).
    """

    def __init__(self, incoming, memory_shape, num_units, num_reads,
                 W_in_to_hid=init.GlorotUniform(), b_in_to_hid=init.Constant(0.0),
                 W_reads_to_hid=init.GlorotUniform(), b_reads_to_hid=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, hid_init=init.Constant(0.0),
                 learn_init=False, **kwargs):
        super().__init__(incoming, memory_shape, num_units, num_reads, hid_init=hid_init,
                         learn_init=learn_init, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        U = self.num_units
        self.W_in_to_hid = self.add_param(W_in_to_hid, (self.num_inputs, U), name="W_in_to_hid")
        self.b_in_to_hid = (None if b_in_to_hid is None else self.add_param(
            b_in_to_hid, (U,), name="b_in_to_hid", regularizable=False))
        self.W_reads_to_hid = (self.add_param(W_reads_to_hid, (self.num_read_inputs, U),
                                              name="W_reads_to_hid")
                               if self.num_reads else None)
        self.b_reads_to_hid = (None if b_reads_to_hid is None or not self.num_reads else
                               self.add_param(b_reads_to_hid, (U,), name="b_reads_to_hid",
                                              regularizable=False))

    def project_input(self, input):
        projection = pt.dot(input, self.W_in_to_hid)
        for b in (self.b_in_to_hid, self.b_reads_to_hid):
            if b is not None:
                projection = projection + b
        return projection

    def step(self, input, reads, hidden, state, input_projected=False):
        activation = self._projected(input, input_projected)
        if self.num_reads:
            activation = activation + pt.dot(self._flat_reads(reads), self.W_reads_to_hid)
        hidden = self.nonlinearity(activation)
        return hidden, hidden


class RecurrentController(DenseController):
    r"""A simple recurrent controller:

    .. math::
        h_t = \varphi(x_t W_{in} + b_{in} + r_t W_{reads} + b_{reads} + h_{t-1} W_{hid}
        + b_{hid})

    Parameters
    ----------
    W_hid_to_hid, b_hid_to_hid
        The recurrent weights (orthogonal by default) and bias.
    Others
        As :class:`DenseController`.
    """

    def __init__(self, incoming, memory_shape, num_units, num_reads,
                 W_in_to_hid=init.GlorotUniform(), b_in_to_hid=init.Constant(0.0),
                 W_reads_to_hid=init.GlorotUniform(), b_reads_to_hid=init.Constant(0.0),
                 W_hid_to_hid=init.Orthogonal(), b_hid_to_hid=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, hid_init=init.Constant(0.0),
                 learn_init=False, **kwargs):
        super().__init__(incoming, memory_shape, num_units, num_reads, W_in_to_hid=W_in_to_hid,
                         b_in_to_hid=b_in_to_hid, W_reads_to_hid=W_reads_to_hid,
                         b_reads_to_hid=b_reads_to_hid, nonlinearity=nonlinearity,
                         hid_init=hid_init, learn_init=learn_init, **kwargs)
        U = self.num_units
        self.W_hid_to_hid = self.add_param(W_hid_to_hid, (U, U), name="W_hid_to_hid")
        self.b_hid_to_hid = (None if b_hid_to_hid is None else self.add_param(
            b_hid_to_hid, (U,), name="b_hid_to_hid", regularizable=False))

    def project_input(self, input):
        projection = super().project_input(input)
        return projection if self.b_hid_to_hid is None else projection + self.b_hid_to_hid

    def step(self, input, reads, hidden, state, input_projected=False):
        activation = self._projected(input, input_projected) + pt.dot(hidden, self.W_hid_to_hid)
        if self.num_reads:
            activation = activation + pt.dot(self._flat_reads(reads), self.W_reads_to_hid)
        hidden = self.nonlinearity(activation)
        return hidden, hidden


class _GatedController(Controller):
    """Shared machinery of the gated controllers: per-gate parameters named
    ``W_in_to_<gate>``, ``W_reads_to_<gate>``, ``W_hid_to_<gate>`` and ``b_<gate>``, used
    through matrices that stack the gates side by side (built once, outside any scan)."""

    gates = ()

    def _add_gate_params(self, W_in, W_reads, W_hid, b, b_overrides=None):
        U = self.num_units
        b_overrides = b_overrides or {}
        per_kind = {"W_in": [], "W_reads": [], "W_hid": [], "b": []}
        for gate in self.gates:
            w_in = self.add_param(W_in, (self.num_inputs, U), name=f"W_in_to_{gate}")
            w_hid = self.add_param(W_hid, (U, U), name=f"W_hid_to_{gate}")
            bias = self.add_param(b_overrides.get(gate, b), (U,), name=f"b_{gate}",
                                  regularizable=False)
            setattr(self, f"W_in_to_{gate}", w_in)
            setattr(self, f"W_hid_to_{gate}", w_hid)
            setattr(self, f"b_{gate}", bias)
            per_kind["W_in"].append(w_in)
            per_kind["W_hid"].append(w_hid)
            per_kind["b"].append(bias)
            if self.num_reads:
                w_reads = self.add_param(W_reads, (self.num_read_inputs, U),
                                         name=f"W_reads_to_{gate}")
                setattr(self, f"W_reads_to_{gate}", w_reads)
                per_kind["W_reads"].append(w_reads)
        self._W_in_stacked = pt.concatenate(per_kind["W_in"], axis=1)
        self._W_hid_stacked = pt.concatenate(per_kind["W_hid"], axis=1)
        self._b_stacked = pt.concatenate(per_kind["b"])
        self._W_reads_stacked = (pt.concatenate(per_kind["W_reads"], axis=1)
                                 if self.num_reads else None)

    def project_input(self, input):
        return pt.dot(input, self._W_in_stacked) + self._b_stacked

    def _gate_preactivations(self, input, reads, input_projected):
        activation = self._projected(input, input_projected)
        if self.num_reads:
            activation = activation + pt.dot(self._flat_reads(reads), self._W_reads_stacked)
        return activation

    def _slice(self, stacked, index):
        U = self.num_units
        return stacked[:, index * U:(index + 1) * U]


class LSTMController(_GatedController):
    r"""An LSTM controller (Hochreiter & Schmidhuber, 1997), the paper's choice for most tasks.

    With :math:`z = [x_t, r_t, h_{t-1}]` and one weight matrix and bias per gate:

    .. math::
        i_t &= \sigma(z W_i + b_i), \quad f_t = \sigma(z W_f + b_f), \quad
        o_t = \sigma(z W_o + b_o) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot \tanh(z W_c + b_c) \\
        h_t &= o_t \odot \varphi(c_t)

    The state is the cell :math:`c_t`.

    Parameters
    ----------
    W_in, W_reads, W_hid, b : initializers
        Used for every gate's ``W_in_to_<gate>``, ``W_reads_to_<gate>``, ``W_hid_to_<gate>``,
        ``b_<gate>``; gates are ``ingate``, ``forgetgate``, ``cell``, ``outgate``.
    b_forgetgate : initializer
        The forget gate's bias; 1 by default, so the cell remembers from the start.
    nonlinearity : callable
        :math:`\varphi`, applied to the cell (tanh).
    cell_init : initializer
        :math:`c_0`, of shape ``(1, num_units)``.
    Others
        As :class:`Controller`.
    """

    gates = ("ingate", "forgetgate", "cell", "outgate")

    def __init__(self, incoming, memory_shape, num_units, num_reads,
                 W_in=init.GlorotUniform(), W_reads=init.GlorotUniform(),
                 W_hid=init.Orthogonal(), b=init.Constant(0.0),
                 b_forgetgate=init.Constant(1.0), nonlinearity=nonlinearities.tanh,
                 hid_init=init.Constant(0.0), cell_init=init.Constant(0.0), learn_init=False,
                 **kwargs):
        super().__init__(incoming, memory_shape, num_units, num_reads, hid_init=hid_init,
                         learn_init=learn_init, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self._add_gate_params(W_in, W_reads, W_hid, b, {"forgetgate": b_forgetgate})
        self.cell_init = self.add_param(cell_init, (1, self.num_units), name="cell_init",
                                        trainable=learn_init, regularizable=False)
        self.state_size = self.num_units

    def outputs_info(self, batch_size):
        return [pt.repeat(self.hid_init, batch_size, axis=0),
                pt.repeat(self.cell_init, batch_size, axis=0)]

    def step(self, input, reads, hidden, state, input_projected=False):
        activation = (self._gate_preactivations(input, reads, input_projected)
                      + pt.dot(hidden, self._W_hid_stacked))
        ingate = pt.sigmoid(self._slice(activation, 0))
        forgetgate = pt.sigmoid(self._slice(activation, 1))
        candidate = pt.tanh(self._slice(activation, 2))
        outgate = pt.sigmoid(self._slice(activation, 3))
        cell = forgetgate * state + ingate * candidate
        hidden = outgate * self.nonlinearity(cell)
        return hidden, cell


class GRUController(_GatedController):
    r"""A gated recurrent unit controller (Cho et al., 2014).

    With :math:`z = [x_t, r_t]`:

    .. math::
        \rho_t &= \sigma(z W_\rho + h_{t-1} U_\rho + b_\rho), \quad
        u_t = \sigma(z W_u + h_{t-1} U_u + b_u) \\
        \tilde h_t &= \varphi(z W_c + \rho_t \odot (h_{t-1} U_c) + b_c) \\
        h_t &= (1 - u_t) \odot h_{t-1} + u_t \odot \tilde h_t

    Gates are named ``resetgate``, ``updategate`` and ``hidden_update``.

    Parameters
    ----------
    W_in, W_reads, W_hid, b : initializers
        Used for every gate.
    nonlinearity : callable
        :math:`\varphi` (tanh).
    Others
        As :class:`Controller`.
    """

    gates = ("resetgate", "updategate", "hidden_update")

    def __init__(self, incoming, memory_shape, num_units, num_reads,
                 W_in=init.GlorotUniform(), W_reads=init.GlorotUniform(),
                 W_hid=init.Orthogonal(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.tanh, hid_init=init.Constant(0.0),
                 learn_init=False, **kwargs):
        super().__init__(incoming, memory_shape, num_units, num_reads, hid_init=hid_init,
                         learn_init=learn_init, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self._add_gate_params(W_in, W_reads, W_hid, b)

    def step(self, input, reads, hidden, state, input_projected=False):
        from_input = self._gate_preactivations(input, reads, input_projected)
        from_hidden = pt.dot(hidden, self._W_hid_stacked)
        resetgate = pt.sigmoid(self._slice(from_input, 0) + self._slice(from_hidden, 0))
        updategate = pt.sigmoid(self._slice(from_input, 1) + self._slice(from_hidden, 1))
        candidate = self.nonlinearity(self._slice(from_input, 2)
                                      + resetgate * self._slice(from_hidden, 2))
        hidden = (1.0 - updategate) * hidden + updategate * candidate
        return hidden, hidden
