r"""Layers of one simple operation each: an expression, a bias, a scale, an inverse, learned
or randomized leaky rectifiers, and spatial transformers."""
import numpy as np
import pytensor
import pytensor.tensor as pt

from .. import init, nonlinearities
from .base import Layer, MergeLayer
from .dense import NonlinearityLayer
from .noise import _advance, _random_stream

__all__ = ["NonlinearityLayer", "ExpressionLayer", "BiasLayer", "ScaleLayer", "standardize",
           "InverseLayer", "TransformerLayer", "TPSTransformerLayer",
           "ParametricRectifierLayer", "prelu", "RandomizedRectifierLayer", "rrelu"]


class ExpressionLayer(Layer):
    """Applies ``function`` to the input.

    Parameters
    ----------
    incoming : Layer or tuple
    function : callable
        Maps the symbolic input to the symbolic output.
    output_shape : None, tuple, callable or 'auto'
        ``None``: the input shape; a tuple: that shape; a callable: called with the input
        shape; ``'auto'``: found by applying ``function`` to arrays of the input shape (unknown
        sizes are tried at two values and stay ``None`` where the result depends on them).
    """

    def __init__(self, incoming, function, output_shape=None, **kwargs):
        super().__init__(incoming, **kwargs)
        if output_shape is not None and output_shape != "auto" and not callable(output_shape):
            output_shape = tuple(output_shape)
        self.function, self._output_shape = function, output_shape

    def get_output_shape_for(self, input_shape):
        spec = self._output_shape
        if spec is None:
            return input_shape
        if spec == "auto":
            results = []
            for filler in (2, 3):
                value = np.ones([filler if s is None else s for s in input_shape],
                                dtype=pytensor.config.floatX)
                results.append(np.shape(self.function(pytensor.shared(value)).eval()))
            return tuple(a if a == b else None for a, b in zip(*results))
        if callable(spec):
            return tuple(spec(input_shape))
        return spec

    def get_output_for(self, input, **kwargs):
        return self.function(input)


def _shared_axes(shared_axes, ndim):
    if shared_axes == "auto":
        return (0,) + tuple(range(2, ndim))
    if shared_axes == "all":
        return tuple(range(ndim))
    if isinstance(shared_axes, int):
        return (shared_axes,)
    return tuple(shared_axes)


def _param_shape(layer, shared_axes, what):
    shape = [size for axis, size in enumerate(layer.input_shape) if axis not in shared_axes]
    if any(size is None for size in shape):
        raise ValueError(f"{layer.__class__.__name__} needs specified input sizes for all axes "
                         f"that {what} are not shared over, got {layer.input_shape} with "
                         f"shared_axes={shared_axes}")
    return tuple(shape)


def _pattern(ndim, shared_axes):
    kept = iter(range(ndim - len(shared_axes)))
    return tuple("x" if axis in shared_axes else next(kept) for axis in range(ndim))


class BiasLayer(Layer):
    r"""Adds a learned bias, :math:`y = x + b`, with ``b`` shared over ``shared_axes``.

    Parameters
    ----------
    incoming : Layer or tuple
    b : initializer, array, shared variable or None
        The biases, of the shape of the axes not shared; ``None``: the identity.
    shared_axes : 'auto', int or tuple of int
        ``'auto'``: all but the second axis (one bias per unit or channel).
    """

    def __init__(self, incoming, b=init.Constant(0), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(shared_axes, len(self.input_shape))
        if b is None:
            self.b = None
        else:
            shape = _param_shape(self, self.shared_axes, "biases")
            self.b = self.add_param(b, shape, "b", regularizable=False)

    def get_output_for(self, input, **kwargs):
        if self.b is None:
            return input
        return input + self.b.dimshuffle(_pattern(len(self.input_shape), self.shared_axes))


class ScaleLayer(Layer):
    r"""Multiplies by learned scales, :math:`y = x \odot s`, with ``s`` shared over
    ``shared_axes``.

    Parameters
    ----------
    incoming : Layer or tuple
    scales : initializer, array or shared variable
        Of the shape of the axes not shared.
    shared_axes : 'auto', int or tuple of int
        ``'auto'``: all but the second axis.
    """

    def __init__(self, incoming, scales=init.Constant(1), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(shared_axes, len(self.input_shape))
        shape = _param_shape(self, self.shared_axes, "scales")
        self.scales = self.add_param(scales, shape, "scales", regularizable=False)

    def get_output_for(self, input, **kwargs):
        return input * self.scales.dimshuffle(_pattern(len(self.input_shape), self.shared_axes))


def standardize(layer, offset, scale, shared_axes="auto"):
    r"""Standardize ``layer``'s output with fixed statistics, :math:`y = (x - o) / s`: a
    :class:`BiasLayer` of ``-offset`` and a :class:`ScaleLayer` of ``1 / scale``, neither
    trainable.

    Parameters
    ----------
    layer : Layer
    offset, scale : array, shared variable or expression
        Of the shape of the axes not in ``shared_axes``.
    shared_axes : 'auto', int or tuple of int
    """
    layer = BiasLayer(layer, -offset, shared_axes)
    layer.params[layer.b].discard("trainable")
    layer = ScaleLayer(layer, 1 / scale, shared_axes)
    layer.params[layer.scales].discard("trainable")
    return layer


class InverseLayer(MergeLayer):
    r"""The transpose of the linear map that ``layer`` applies at its current input: its input
    :math:`g` is sent back through ``layer`` as a gradient,
    :math:`y = (\partial\, \mathrm{layer}(x) / \partial x)^T g`. For a dense layer without
    nonlinearity this multiplies by :math:`W^T`; after a pooling layer it routes values to the
    maxima; after a convolution it is the transposed convolution.

    Parameters
    ----------
    incoming : Layer or tuple
        Of the shape of ``layer``'s output.
    layer : Layer
        The layer to invert; its output shape is ``incoming``'s, and this layer's output has
        ``layer``'s input shape.
    """

    def __init__(self, incoming, layer, **kwargs):
        super().__init__([incoming, layer, layer.input_layer], **kwargs)

    def get_output_shape_for(self, input_shapes):
        return input_shapes[2]

    def get_output_for(self, inputs, **kwargs):
        input, layer_out, layer_in = inputs
        return pytensor.grad(None, wrt=layer_in, known_grads={layer_out: input})


def _tps_kernel(squared_distance, log):
    r"""The thin-plate-spline radial basis :math:`U(r) = r^2 \log r^2`, with :math:`U(0) = 0`,
    of squared distances (``log`` is ``numpy.log`` or ``pytensor.tensor.log``)."""
    # r^2 log r^2 -> 0 as r -> 0; the floor keeps the logarithm finite there
    return squared_distance * log(squared_distance + (squared_distance <= 0))


class TPSTransformerLayer(MergeLayer):
    r"""A spatial transformer (Jaderberg et al., 2015) with a thin-plate-spline transformation
    (Bookstein, 1989) given by the movement of control points.

    ``control_points`` points :math:`c_k` sit on a regular square grid over the image
    (coordinates in :math:`[-1, 1]`, ``x`` varying fastest). For each example the
    ``localization_network`` gives their offsets :math:`\delta_k`, and the destination points
    :math:`d_k = c_k + \delta_k`. Each coordinate of the sampling map is the thin-plate spline

    .. math:: f(p) = a_0 + a_x x + a_y y + \sum_k w_k \, U(\lVert p - c_k \rVert),
              \qquad U(r) = r^2 \log r^2,

    that interpolates the destinations, :math:`f(c_k) = d_k`, with
    :math:`\sum_k w_k = \sum_k w_k x_k = \sum_k w_k y_k = 0`; in matrix form
    :math:`\begin{pmatrix} K & P \\ P^T & 0 \end{pmatrix}
    \begin{pmatrix} w \\ a \end{pmatrix} = \begin{pmatrix} d \\ 0 \end{pmatrix}`
    with :math:`K_{ij} = U(\lVert c_i - c_j \rVert)` and :math:`P = (1, x_k, y_k)`. The
    output samples the input bilinearly at :math:`f(p)` for each point :math:`p` of a regular
    output grid over :math:`[-1, 1]^2`; zero offsets reproduce the input.

    The system depends on the control points only, so its inverse is computed once; with
    ``precompute_grid`` the basis at every output point is too, and the sampling points are
    one product :math:`\delta \mapsto (c + \delta) A^T` with a constant
    ``(points, control_points)`` matrix :math:`A`.

    Parameters
    ----------
    incoming : Layer or tuple
        The images ``(batch, channels, height, width)``.
    localization_network : Layer
        Output of shape ``(batch, 2 * control_points)``: the ``x`` offsets of the control
        points, then their ``y`` offsets (in the grid's order).
    downsample_factor : float or tuple of float
        The output is the input's height and width divided by this.
    control_points : int
        The number of control points, a perfect square of at least 4.
    precompute_grid : 'auto' or bool
        Compute the basis at the output points when the layer is built (needs the input's
        height and width); ``'auto'`` does so whenever they are known.
    border_mode : {'nearest', 'mirror', 'wrap'}
        How points outside the image are sampled, as in :class:`TransformerLayer`.
    """

    def __init__(self, incoming, localization_network, downsample_factor=1,
                 control_points=16, precompute_grid="auto", border_mode="nearest", **kwargs):
        super().__init__([incoming, localization_network], **kwargs)
        self.downsample_factor = (tuple(downsample_factor) if isinstance(
            downsample_factor, (tuple, list)) else (downsample_factor,) * 2)
        side = int(round(np.sqrt(control_points))) if control_points > 0 else 0
        if side * side != control_points or side < 2:
            raise ValueError("The number of control points must be a perfect square of at "
                             f"least 4, got control_points={control_points!r}")
        if border_mode not in ("nearest", "mirror", "wrap"):
            raise ValueError(f"border_mode must be 'nearest', 'mirror' or 'wrap', got "
                             f"{border_mode!r}")
        input_shp, loc_shp = self.input_shapes
        if len(loc_shp) != 2 or loc_shp[-1] != 2 * control_points:
            raise ValueError("The localization network must have output shape: (batch_size, "
                             f"2*control_points) = (batch_size, {2 * control_points}), "
                             f"got {loc_shp}")
        if len(input_shp) != 4:
            raise ValueError("The input network must have a 4-dimensional output shape: "
                             "(batch_size, num_input_channels, input_rows, input_columns), "
                             f"got {input_shp}")
        known = all(s is not None for s in input_shp[2:])
        if precompute_grid == "auto":
            precompute_grid = known
        elif precompute_grid and not known:
            raise ValueError("precompute_grid=True needs the input's height and width, got "
                             f"input shape {input_shp}")
        self.control_points = control_points
        self.precompute_grid = bool(precompute_grid)
        self.border_mode = border_mode
        dtype = pytensor.config.floatX
        axis = np.linspace(-1, 1, side)
        grid_x, grid_y = np.meshgrid(axis, axis)
        self.source_points = np.stack([grid_x.ravel(), grid_y.ravel()])  # (2, K)
        # inverse of the system matrix, restricted to the columns the destinations multiply
        c = self.source_points.T
        kernel = _tps_kernel(((c[:, None] - c[None]) ** 2).sum(-1), np.log)
        affine = np.hstack([np.ones((control_points, 1)), c])
        system = np.block([[kernel, affine], [affine.T, np.zeros((3, 3))]])
        self._solve = np.linalg.inv(system)[:, :control_points].astype(dtype)  # (K + 3, K)
        if self.precompute_grid:
            out_height, out_width = self.get_output_shape_for(self.input_shapes)[2:]
            points = np.stack([g.ravel() for g in np.meshgrid(np.linspace(-1, 1, out_width),
                                                             np.linspace(-1, 1, out_height))],
                              axis=1)
            basis = np.hstack([_tps_kernel(((points[:, None] - c[None]) ** 2).sum(-1), np.log),
                               np.ones((len(points), 1)), points])
            self._interpolation = (basis @ self._solve.astype("float64")).astype(dtype)

    def get_output_shape_for(self, input_shapes):
        shape = input_shapes[0]
        return shape[:2] + tuple(None if s is None else int(s // f)
                                 for s, f in zip(shape[2:], self.downsample_factor))

    def get_output_for(self, inputs, **kwargs):
        input, offsets = (pt.as_tensor_variable(v) for v in inputs)
        dtype = input.dtype
        source = pt.constant(self.source_points.astype(dtype))
        destinations = source + offsets.reshape((-1, 2, self.control_points))  # (batch, 2, K)
        out_height = pt.cast(input.shape[2] // self.downsample_factor[0], "int64")
        out_width = pt.cast(input.shape[3] // self.downsample_factor[1], "int64")
        if self.precompute_grid:
            interpolation = pt.constant(self._interpolation.astype(dtype))
        else:
            xs = pt.cast(-1 + 2 * pt.arange(out_width) / pt.maximum(out_width - 1, 1), dtype)
            ys = pt.cast(-1 + 2 * pt.arange(out_height) / pt.maximum(out_height - 1, 1), dtype)
            points = pt.stack([pt.tile(xs, (out_height,)), pt.repeat(ys, out_width)], axis=1)
            squared = pt.sqr(points[:, None, :] - source.T[None]).sum(axis=-1)
            basis = pt.concatenate([_tps_kernel(squared, pt.log),
                                    pt.ones((points.shape[0], 1), dtype=dtype), points], axis=1)
            interpolation = pt.dot(basis, pt.constant(self._solve.astype(dtype)))
        sampling = pt.dot(destinations, interpolation.T)  # (batch, 2, points)
        return _bilinear_sample(input, sampling[:, 0], sampling[:, 1], out_height, out_width,
                                self.border_mode)


class ParametricRectifierLayer(Layer):
    r"""A rectifier with learned leakiness (He et al., 2015),
    :math:`y = \max(x, 0) + \alpha \min(x, 0)`, with ``alpha`` shared over ``shared_axes``.

    Parameters
    ----------
    incoming : Layer or tuple
    alpha : initializer, array or shared variable
        The slopes of the negative part.
    shared_axes : 'auto', 'all', int or tuple of int
        ``'auto'``: all but the second axis (one slope per unit or channel); ``'all'``: one
        slope.
    """

    def __init__(self, incoming, alpha=init.Constant(0.25), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(shared_axes, len(self.input_shape))
        shape = _param_shape(self, self.shared_axes, "alphas")
        self.alpha = self.add_param(alpha, shape, name="alpha", regularizable=False)

    def get_output_for(self, input, **kwargs):
        alpha = self.alpha.dimshuffle(_pattern(len(self.input_shape), self.shared_axes))
        return pt.maximum(input, 0) + alpha * pt.minimum(input, 0)


def prelu(layer, **kwargs):
    """Replace ``layer``'s nonlinearity by a :class:`ParametricRectifierLayer` stacked on it
    (``**kwargs`` go to that layer; its ``name`` defaults to the layer's + ``_prelu``)."""
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    name = kwargs.pop("name", None) or (getattr(layer, "name", None) and layer.name + "_prelu")
    return ParametricRectifierLayer(layer, name=name, **kwargs)


class RandomizedRectifierLayer(Layer):
    r"""A leaky rectifier with random leakiness (Xu et al., 2015):
    :math:`y = x` for :math:`x \ge 0` and :math:`y = a x` otherwise, with
    :math:`a \sim U(\mathrm{lower}, \mathrm{upper})` drawn per entry during training (shared over
    ``shared_axes``), and :math:`a = (\mathrm{lower} + \mathrm{upper}) / 2` with
    ``deterministic=True``.

    Parameters
    ----------
    incoming : Layer or tuple
    lower, upper : float
        The range of the slopes, :math:`0 \le` lower :math:`\le` upper.
    shared_axes : 'auto', 'all', int or tuple of int
        Axes over which one slope is shared; ``'auto'``: all but the second.
    """

    def __init__(self, incoming, lower=0.3, upper=0.8, shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.lower, self.upper = lower, upper
        if not isinstance(lower, pt.TensorVariable) and not isinstance(upper, pt.TensorVariable):
            if not 0 <= lower <= upper:
                raise ValueError(f"RandomizedRectifierLayer needs 0 <= lower <= upper, got "
                                 f"lower={lower}, upper={upper} (upper bound must be higher "
                                 "than lower bound)")
        self.shared_axes = _shared_axes(shared_axes, len(self.input_shape))
        self._rng = _random_stream()

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or (not isinstance(self.upper, pt.TensorVariable)
                             and not isinstance(self.lower, pt.TensorVariable)
                             and self.upper == self.lower):
            # the mean slope; a NumPy input gives a NumPy output, as in Lasagne
            return nonlinearities.LeakyRectify((self.upper + self.lower) / 2.0)(input)
        input = pt.as_tensor_variable(input)
        shape = tuple(1 if axis in self.shared_axes else input.shape[axis]
                      for axis in range(input.ndim))
        next_rng, slopes = pt.random.uniform(self.lower, self.upper, size=shape, rng=self._rng,
                                             return_next_rng=True)
        _advance(self._rng, next_rng)
        slopes = pt.cast(slopes, input.dtype)
        if self.shared_axes:
            slopes = pt.specify_broadcastable(slopes, *self.shared_axes)
        return pt.switch(input >= 0, input, input * slopes)


def rrelu(layer, **kwargs):
    """Replace ``layer``'s nonlinearity by a :class:`RandomizedRectifierLayer` stacked on it
    (``**kwargs`` go to that layer; its ``name`` defaults to the layer's + ``_rrelu``)."""
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    name = kwargs.pop("name", None) or (getattr(layer, "name", None) and layer.name + "_rrelu")
    return RandomizedRectifierLayer(layer, name=name, **kwargs)


def _bilinear_sample(input, x, y, out_height, out_width, border_mode):
    r"""Sample ``input`` ``(batch, channels, height, width)`` at the points ``(x, y)``
    (``(batch, points)`` each, in :math:`[-1, 1]` over the image) by bilinear interpolation,
    returning ``(batch, channels, out_height, out_width)``."""
    batch, channels, height, width = (input.shape[0], input.shape[1], input.shape[2],
                                      input.shape[3])
    dtype = input.dtype
    height_f, width_f = pt.cast(height, dtype), pt.cast(width, dtype)
    x = (x + 1) / 2 * (width_f - 1)
    y = (y + 1) / 2 * (height_f - 1)
    x0_f, y0_f = pt.floor(x), pt.floor(y)
    x1_f, y1_f = x0_f + 1, y0_f + 1

    def index(i, size):
        i = pt.cast(i, "int64")
        if border_mode == "nearest":
            return pt.clip(i, 0, size - 1)
        if border_mode == "wrap":
            return pt.mod(i, size)
        # mirror: reflect about the first and the last entry
        period = pt.maximum(2 * (size - 1), 1)
        i = pt.mod(i, period)
        return pt.switch(i >= size, period - i, i)

    x0, x1 = index(x0_f, width), index(x1_f, width)
    y0, y1 = index(y0_f, height), index(y1_f, height)
    pixels = input.dimshuffle(0, 2, 3, 1).reshape((-1, channels))
    base = (pt.arange(batch) * height * width)[:, None]

    def gather(yi, xi):
        return pixels[(base + yi * width + xi).flatten()]

    weights = [((x1_f - x) * (y1_f - y), y0, x0), ((x1_f - x) * (y - y0_f), y1, x0),
               ((x - x0_f) * (y1_f - y), y0, x1), ((x - x0_f) * (y - y0_f), y1, x1)]
    output = sum(w.flatten()[:, None] * gather(yi, xi) for w, yi, xi in weights)
    output = output.reshape((batch, out_height, out_width, channels))
    return output.dimshuffle(0, 3, 1, 2)


class TransformerLayer(MergeLayer):
    r"""A spatial transformer (Jaderberg et al., 2015) with an affine transformation: for each
    example, ``localization_network`` gives the six entries of :math:`\theta` (a 2x3 matrix),
    and the output samples the input bilinearly at

    .. math:: \begin{pmatrix} x_s \\ y_s \end{pmatrix} = \theta
              \begin{pmatrix} x_t \\ y_t \\ 1 \end{pmatrix}

    for each output position :math:`(x_t, y_t)` on a regular grid over :math:`[-1, 1]^2`
    (the identity :math:`\theta = [[1, 0, 0], [0, 1, 0]]` reproduces the input).

    Parameters
    ----------
    incoming : Layer or tuple
        The images ``(batch, channels, height, width)``.
    localization_network : Layer
        Output of shape ``(batch, 6)``: :math:`\theta` row by row.
    downsample_factor : float or tuple of float
        The output is the input's height and width divided by this.
    border_mode : {'nearest', 'mirror', 'wrap'}
        How points outside the image are sampled: the nearest border pixel, the image
        reflected, or the image repeated.
    """

    def __init__(self, incoming, localization_network, downsample_factor=1,
                 border_mode="nearest", **kwargs):
        super().__init__([incoming, localization_network], **kwargs)
        self.downsample_factor = (tuple(downsample_factor) if isinstance(
            downsample_factor, (tuple, list)) else (downsample_factor,) * 2)
        if border_mode not in ("nearest", "mirror", "wrap"):
            raise ValueError(f"border_mode must be 'nearest', 'mirror' or 'wrap', got "
                             f"{border_mode!r}")
        self.border_mode = border_mode
        input_shp, loc_shp = self.input_shapes
        if loc_shp[-1] != 6 or len(loc_shp) != 2:
            raise ValueError("The localization network must have output shape: "
                             f"(batch_size, 6), got {loc_shp}")
        if len(input_shp) != 4:
            raise ValueError("The input network must have a 4-dimensional output shape: "
                             f"(batch_size, num_input_channels, input_rows, input_columns), "
                             f"got {input_shp}")

    def get_output_shape_for(self, input_shapes):
        shape = input_shapes[0]
        factors = self.downsample_factor
        return shape[:2] + tuple(None if s is None else int(s // f)
                                 for s, f in zip(shape[2:], factors))

    def get_output_for(self, inputs, **kwargs):
        input, theta = (pt.as_tensor_variable(v) for v in inputs)
        theta = theta.reshape((-1, 2, 3))
        dtype = input.dtype
        out_height = pt.cast(input.shape[2] // self.downsample_factor[0], "int64")
        out_width = pt.cast(input.shape[3] // self.downsample_factor[1], "int64")
        xs = pt.cast(-1 + 2 * pt.arange(out_width) / pt.maximum(out_width - 1, 1), dtype)
        ys = pt.cast(-1 + 2 * pt.arange(out_height) / pt.maximum(out_height - 1, 1), dtype)
        grid = pt.stack([pt.tile(xs, (out_height,)), pt.repeat(ys, out_width),
                         pt.ones((out_height * out_width,), dtype=dtype)])  # (3, points)
        source = pt.dot(theta, grid)  # (batch, 2, points)
        return _bilinear_sample(input, source[:, 0], source[:, 1], out_height, out_width,
                                self.border_mode)
