r"""Read and write heads: addressing (paper section 3.3), reading (3.1) and writing (3.2).

A head emits, from the controller's output :math:`h_t`, a key :math:`k_t`, a key strength
:math:`\beta_t \geq 0`, an interpolation gate :math:`g_t \in (0, 1)`, a shift weighting
:math:`s_t` over ``num_shifts`` offsets and a sharpening exponent :math:`\gamma_t \geq 1`
(write heads also an erase vector :math:`e_t \in (0, 1)^M` and an add vector :math:`a_t`),
each as :math:`\varphi(h_t W + b)`. Its weighting over the :math:`N` memory locations is then

.. math::
    w^c_t[i] &= \frac{\exp(\beta_t K(k_t, M_t[i]))}{\sum_j \exp(\beta_t K(k_t, M_t[j]))}
    &\text{(content, with cosine similarity } K) \\
    w^g_t &= g_t w^c_t + (1 - g_t) w_{t-1} &\text{(interpolation)} \\
    \tilde w_t[i] &= \sum_{k=0}^{S-1} s_t[k]\, w^g_t[(i - k + \lfloor S/2 \rfloor) \bmod N]
    &\text{(circular shift)} \\
    w_t[i] &= \frac{\tilde w_t[i]^{\gamma_t}}{\sum_j \tilde w_t[j]^{\gamma_t}}
    &\text{(sharpening)}

so ``s[k]`` weighs a move of ``k - S // 2`` places: with 3 shifts, ``s = [0, 0, 1]`` moves the
focus one place forward. With ``shift_mode='zero_pad'`` locations shifted past either end are
dropped instead of wrapping around.

Heads of one kind are computed together by a :class:`HeadCollection`: their weight matrices
are stacked into one, built once outside the recurrence, so each step makes one matrix product
per kind of head.
"""
import numpy as np
import pytensor.tensor as pt

from .implementation import active
from .init import OneHot
from .lasagne import init, nonlinearities
from .lasagne.layers.base import Layer
from .memory import check_memory_shape
from .nonlinearities import one_plus_softplus
from .similarities import cosine_similarity

__all__ = ["Head", "ReadHead", "WriteHead", "HeadCollection", "ReadHeadCollection",
           "WriteHeadCollection", "content_addressing", "interpolate", "shift",
           "sharpen", "SHIFT_MODES"]

#: how the shift treats the ends of the memory: wrap around (the paper's circular
#: convolution) or drop what moves past them.
SHIFT_MODES = ("circular", "zero_pad")

#: added to the shifted weighting before sharpening so that a location at exactly 0 (possible
#: with zero padding) has a finite gradient with respect to gamma.
SHARPEN_EPSILON = 1e-6


def content_addressing(key, beta, memory, implementation=None):
    r""":math:`w^c = \mathrm{softmax}(\beta K(k, M))` over the locations.

    Parameters
    ----------
    key : ``(batch, heads, M)``
    beta : ``(batch, heads)``
    memory : ``(batch, N, M)``
    implementation : :class:`~ntm.implementation.Implementation`, optional
        What computes :math:`K` (default: :func:`ntm.implementation.active`).

    Returns
    -------
    ``(batch, heads, N)``
    """
    scores = beta[:, :, None] * cosine_similarity(key, memory, implementation=implementation)
    return pt.special.softmax(scores, axis=-1)


def interpolate(content_weights, previous_weights, gate):
    r"""Interpolation with the previous weighting (paper eq. 7):
    :math:`w^g = g w^c + (1 - g) w_{t-1}`.

    Parameters
    ----------
    content_weights, previous_weights : tensor, ``(batch, heads, N)``
        :math:`w^c` and :math:`w_{t-1}`.
    gate : tensor, ``(batch, heads)``
        :math:`g \in [0, 1]`.

    Returns
    -------
    tensor, ``(batch, heads, N)``
        :math:`w^g`.
    """
    gate = gate[:, :, None]
    return gate * content_weights + (1.0 - gate) * previous_weights


def _moved_copies(weights, offsets, num_locations, mode):
    """``out[k][..., i] = weights[..., i - offsets[k]]`` for every offset, wrapping or
    zero-filled.

    The weighting is cut once, with one ``Split``, at every place an offset needs, and each
    copy is one ``Join`` of the pieces: fewer operations per time step, and fewer still in the
    gradient, than two slices per offset.
    """
    cuts = sorted({(-offset) % num_locations for offset in offsets} - {0})
    bounds = [0] + cuts + [num_locations]
    sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    pieces = (pt.split(weights, sizes, n_splits=len(sizes), axis=-1) if len(sizes) > 1
              else [weights])
    start_of = {start: piece for start, piece in zip(bounds[:-1], pieces)}

    def segment(start, stop):
        return [start_of[b] for b in bounds[:-1] if start <= b < stop]

    copies = []
    for offset in offsets:
        if offset == 0:
            copies.append(weights)
            continue
        cut = (-offset) % num_locations
        if mode == "circular":
            parts = segment(cut, num_locations) + segment(0, cut)
        elif offset > 0:
            parts = [pt.zeros_like(p) for p in segment(cut, num_locations)] + segment(0, cut)
        else:
            parts = segment(cut, num_locations) + [pt.zeros_like(p) for p in segment(0, cut)]
        copies.append(pt.concatenate(parts, axis=-1))
    return copies


def shift(weights, shift_weights, num_locations, mode="circular", num_shifts=None):
    r"""The convolution :math:`\tilde w[i] = \sum_k s[k]\, w[(i - k + \lfloor S/2 \rfloor)
    \bmod N]`.

    Parameters
    ----------
    weights : ``(batch, heads, N)``
    shift_weights : ``(batch, heads, S)``, with ``S`` odd and known
    num_locations : int
        :math:`N`.
    mode : {'circular', 'zero_pad'}
        Wrap around the ends (the paper) or drop what moves past them.
    num_shifts : int, optional
        :math:`S`; read from the static shape of ``shift_weights`` when not given.
    """
    if num_shifts is None:
        num_shifts = shift_weights.type.shape[-1]
    if num_shifts is None:
        raise ValueError("shift needs the number of shifts (last axis of shift_weights) to be "
                         "known statically")
    half = num_shifts // 2
    if num_shifts > num_locations:
        raise ValueError(f"shift: num_shifts={num_shifts} exceeds the {num_locations} "
                         "locations")
    offsets = [k - half for k in range(num_shifts)]
    copies = _moved_copies(weights, offsets, num_locations, mode)
    # s[k] as (batch, heads, 1) columns, cut with one Split
    columns = (pt.split(shift_weights, [1] * num_shifts, n_splits=num_shifts, axis=-1)
               if num_shifts > 1 else [shift_weights])
    total = None
    for column, copy in zip(columns, copies):
        term = column * copy
        total = term if total is None else total + term
    return total


def sharpen(weights, gamma):
    r"""Sharpening (paper eq. 9):
    :math:`w[i] = \tilde w[i]^\gamma / \sum_j \tilde w[j]^\gamma`.

    The weighting is first divided by its maximum (sharpening does not depend on scale), so
    that large :math:`\gamma` cannot underflow every location to 0.

    Parameters
    ----------
    weights : tensor, ``(batch, heads, N)``
        The shifted weighting :math:`\tilde w`.
    gamma : tensor, ``(batch, heads)``
        :math:`\gamma \geq 1`.

    Returns
    -------
    tensor, ``(batch, heads, N)``
        :math:`w`, each row summing to 1.
    """
    weights = weights + SHARPEN_EPSILON
    weights = weights / pt.max(weights, axis=-1, keepdims=True)
    powered = weights ** gamma[:, :, None]
    return powered / pt.sum(powered, axis=-1, keepdims=True)


class Head(Layer):
    r"""A head attached to a controller (see the module docstring for the equations).

    Parameters
    ----------
    controller : :class:`~ntm.controllers.Controller`
        The controller whose output :math:`h_t` drives the head.
    num_shifts : int
        :math:`S`, the number of shift offsets, odd (offsets ``-S//2 .. S//2``).
    memory_shape : tuple of int
        ``(N, M)``; must match the memory and the controller.
    W_hid_to_key, b_hid_to_key, nonlinearity_key
        The key :math:`k_t = \varphi(h_t W + b) \in \mathbb R^M` (tanh).
    W_hid_to_beta, b_hid_to_beta, nonlinearity_beta
        The key strength :math:`\beta_t \geq 0` (softplus).
    W_hid_to_gate, b_hid_to_gate, nonlinearity_gate
        The interpolation gate :math:`g_t \in (0, 1)` (sigmoid).
    W_hid_to_shift, b_hid_to_shift, nonlinearity_shift
        The shift weighting :math:`s_t`, a distribution over the :math:`S` offsets (softmax).
    W_hid_to_gamma, b_hid_to_gamma, nonlinearity_gamma
        The sharpening exponent :math:`\gamma_t \geq 1` (:math:`1 + \mathrm{softplus}`).
    weights_init : initializer
        :math:`w_0`, of shape ``(N,)``; focused (:class:`~ntm.init.OneHot`) by default.
    learn_init : bool
        Whether :math:`w_0` is trained.
    shift_mode : {'circular', 'zero_pad'}
        Circular convolution (the paper's) or a zero-padded one.
    """

    #: names of what the head emits, in the order of the stacked weight matrix.
    components = ("key", "beta", "gate", "shift", "gamma")

    def __init__(self, controller, num_shifts=3, memory_shape=(128, 20),
                 W_hid_to_key=init.GlorotUniform(), b_hid_to_key=init.Constant(0.0),
                 nonlinearity_key=nonlinearities.tanh,
                 W_hid_to_beta=init.GlorotUniform(), b_hid_to_beta=init.Constant(0.0),
                 nonlinearity_beta=nonlinearities.softplus,
                 W_hid_to_gate=init.GlorotUniform(), b_hid_to_gate=init.Constant(0.0),
                 nonlinearity_gate=nonlinearities.sigmoid,
                 W_hid_to_shift=init.GlorotUniform(), b_hid_to_shift=init.Constant(0.0),
                 nonlinearity_shift=nonlinearities.softmax,
                 W_hid_to_gamma=init.GlorotUniform(), b_hid_to_gamma=init.Constant(0.0),
                 nonlinearity_gamma=one_plus_softplus,
                 weights_init=OneHot(), learn_init=False, shift_mode="circular", **kwargs):
        super().__init__(controller, **kwargs)
        who = self.__class__.__name__
        self.memory_shape = check_memory_shape(memory_shape, who)
        if not isinstance(num_shifts, (int, np.integer)) or num_shifts < 1 or num_shifts % 2 == 0:
            raise ValueError(f"{who}: num_shifts must be a positive odd int (offsets "
                             f"-S//2..S//2), got {num_shifts!r}")
        if num_shifts > self.memory_shape[0]:
            raise ValueError(f"{who}: num_shifts={num_shifts} exceeds the number of memory "
                             f"locations N={self.memory_shape[0]}")
        if shift_mode not in SHIFT_MODES:
            raise ValueError(f"{who}: shift_mode must be one of {SHIFT_MODES}, got {shift_mode!r}")
        self.num_units = self.input_shape[-1]
        if self.num_units is None:
            raise ValueError(f"{who}: the controller's number of units must be known")
        self.num_shifts, self.shift_mode, self.learn_init = int(num_shifts), shift_mode, learn_init
        self.component_sizes = {"key": self.memory_shape[1], "beta": 1, "gate": 1,
                                "shift": self.num_shifts, "gamma": 1,
                                "erase": self.memory_shape[1], "add": self.memory_shape[1]}
        specs = dict(key=(W_hid_to_key, b_hid_to_key, nonlinearity_key),
                     beta=(W_hid_to_beta, b_hid_to_beta, nonlinearity_beta),
                     gate=(W_hid_to_gate, b_hid_to_gate, nonlinearity_gate),
                     shift=(W_hid_to_shift, b_hid_to_shift, nonlinearity_shift),
                     gamma=(W_hid_to_gamma, b_hid_to_gamma, nonlinearity_gamma))
        self._add_components(specs)
        self.weights_init = self.add_param(weights_init, (self.memory_shape[0],),
                                           name="weights_init", trainable=learn_init,
                                           regularizable=False)

    def _add_components(self, specs):
        self.nonlinearities = {}
        for component, (W, b, nonlinearity) in specs.items():
            size = self.component_sizes[component]
            setattr(self, f"W_hid_to_{component}",
                    self.add_param(W, (self.num_units, size), name=f"W_hid_to_{component}"))
            setattr(self, f"b_hid_to_{component}",
                    self.add_param(b, (size,), name=f"b_hid_to_{component}",
                                   regularizable=False))
            self.nonlinearities[component] = (nonlinearities.identity if nonlinearity is None
                                              else nonlinearity)
            setattr(self, f"nonlinearity_{component}", self.nonlinearities[component])

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.memory_shape[0])


class ReadHead(Head):
    r"""A read head: :math:`r_t = \sum_i w_t[i] M_t[i]` (paper eq. 2)."""


class WriteHead(Head):
    r"""A write head (paper eq. 3-4): with the weighting and the erase and add vectors emitted
    at the previous step,

    .. math::
        \tilde M_t[i] = M_{t-1}[i] \odot (1 - w[i] e), \qquad M_t[i] = \tilde M_t[i] + w[i] a

    (with several write heads the erasures multiply and the additions sum).

    Parameters
    ----------
    W_hid_to_erase, b_hid_to_erase, nonlinearity_erase
        The erase vector :math:`e_t \in (0, 1)^M` (sigmoid).
    W_hid_to_add, b_hid_to_add, nonlinearity_add
        The add vector :math:`a_t` (tanh).
    Others
        As :class:`Head`.
    """

    components = Head.components + ("erase", "add")

    def __init__(self, controller, num_shifts=3, memory_shape=(128, 20),
                 W_hid_to_erase=init.GlorotUniform(), b_hid_to_erase=init.Constant(0.0),
                 nonlinearity_erase=nonlinearities.sigmoid,
                 W_hid_to_add=init.GlorotUniform(), b_hid_to_add=init.Constant(0.0),
                 nonlinearity_add=nonlinearities.tanh, **kwargs):
        self._write_specs = dict(erase=(W_hid_to_erase, b_hid_to_erase, nonlinearity_erase),
                                 add=(W_hid_to_add, b_hid_to_add, nonlinearity_add))
        super().__init__(controller, num_shifts=num_shifts, memory_shape=memory_shape, **kwargs)

    def _add_components(self, specs):
        super()._add_components({**specs, **self._write_specs})


class HeadCollection:
    """Heads of one kind computed together.

    Their ``W_hid_to_*`` matrices and biases are stacked, component by component, into one
    matrix and one bias (expressions of the parameters, built once here and so outside any
    scan): :meth:`emit` is a single product :math:`h_t W + b`.

    Parameters
    ----------
    heads : list of Head
        Heads of the same class, sharing ``num_shifts``, ``shift_mode`` and ``memory_shape``.
    """

    def __init__(self, heads):
        heads = list(heads)
        self.heads = heads
        if not heads:
            self.components = ()
            return
        first = heads[0]
        for attribute in ("num_shifts", "shift_mode", "memory_shape", "num_units"):
            values = {getattr(h, attribute) for h in heads}
            if len(values) > 1:
                raise ValueError(f"heads of one kind must share {attribute}, got "
                                 f"{sorted(values, key=str)}")
        self.components = first.components
        self.num_shifts, self.shift_mode = first.num_shifts, first.shift_mode
        self.num_locations = first.memory_shape[0]
        self.num_heads = len(heads)
        columns, biases, self._layout, start = [], [], [], 0
        for component in self.components:
            size = first.component_sizes[component]
            columns.extend(getattr(h, f"W_hid_to_{component}") for h in heads)
            biases.extend(getattr(h, f"b_hid_to_{component}") for h in heads)
            self._layout.append((component, start, size))
            start += size * self.num_heads
        self.W_stacked = pt.concatenate(columns, axis=1)
        self.b_stacked = pt.concatenate(biases)
        self.weights_init = pt.stack([h.weights_init for h in heads])

    def __len__(self):
        return len(self.heads)

    def initial_weights(self, batch_size):
        """:math:`w_0` of every head over a batch: ``(batch_size, heads, N)``."""
        return pt.alloc(self.weights_init, batch_size, self.num_heads, self.num_locations)

    def emit(self, hidden):
        """Everything the heads emit from ``hidden`` ``(batch, units)``: a dict mapping each
        component to ``(batch, heads, size)`` (``(batch, heads)`` for scalars)."""
        projection = pt.dot(hidden, self.W_stacked) + self.b_stacked
        sizes = [size * self.num_heads for _, _, size in self._layout]
        # One Split (whose gradient is one Join) rather than a slice per component.
        blocks = (pt.split(projection, sizes, n_splits=len(sizes), axis=1) if len(sizes) > 1
                  else [projection])
        emitted = {}
        for (component, _, size), block in zip(self._layout, blocks):
            # (batch, heads) for scalars, (batch, heads, size) otherwise
            shape = (-1, self.num_heads) if size == 1 else (-1, self.num_heads, size)
            block = block.reshape(shape)
            functions = [h.nonlinearities[component] for h in self.heads]
            if all(f is functions[0] for f in functions):
                block = functions[0](block)
            else:
                block = pt.stack([f(block[:, i]) for i, f in enumerate(functions)], axis=1)
            emitted[component] = block
        return emitted

    def address(self, emitted, previous_weights, memory, implementation=None,
                save_intermediates=False):
        """The new weightings ``(batch, heads, N)`` from what :meth:`emit` returned, the previous
        weightings and the memory ``(batch, N, M)``: :func:`content_addressing`,
        :func:`interpolate`, :func:`shift` and :func:`sharpen`, as computed by
        ``implementation`` (default: :func:`ntm.implementation.active`).
        ``save_intermediates`` asks it for what its ``saved_for_gradient`` returns, for a scan
        to keep.
        """
        implementation = implementation or active()
        return implementation.address(emitted, previous_weights, memory, self.num_locations,
                                      self.num_shifts, self.shift_mode,
                                      save_intermediates=save_intermediates)


class ReadHeadCollection(HeadCollection):
    """Read heads computed together."""

    def read(self, weights, memory, implementation=None):
        r"""The read vectors :math:`r^i = \sum_j w^i[j] M[j]`: ``(batch, heads, M)``, as
        computed by ``implementation`` (default: :func:`ntm.implementation.active`)."""
        return (implementation or active()).read(weights, memory)


class WriteHeadCollection(HeadCollection):
    """Write heads computed together."""

    def write(self, weights, erase, add, memory, implementation=None):
        r""":math:`M \leftarrow M \odot \prod_i (1 - w^i e^{i\top}) + \sum_i w^i a^{i\top}`.

        Parameters
        ----------
        weights : ``(batch, heads, N)``
        erase, add : ``(batch, heads, M)``
        memory : ``(batch, N, M)``
        implementation : :class:`~ntm.implementation.Implementation`, optional
            What computes it (default: :func:`ntm.implementation.active`).
        """
        return (implementation or active()).write(memory, weights, erase, add)
