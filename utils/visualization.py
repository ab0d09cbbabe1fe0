"""Pictures of Neural Turing Machines at work: episode heat maps and learning curves.

:class:`Dashboard` draws one episode of a task as heat maps over time: the input, the target,
the prediction and, given a function returning the NTM's details (see
:meth:`ntm.layers.NTMLayer.get_output_for` with ``get_details=True``), the write and read
weightings of every head and the final contents of the memory. :func:`learning_curve` plots a
training cost (e.g. bits per sequence) and its moving average against the iterations.

Everything works without a display: unless a backend was chosen before this module is imported
(``matplotlib.pyplot`` already imported, or the ``MPLBACKEND`` environment variable set), the
non-interactive Agg backend is selected. Figures are built as plain
:class:`matplotlib.figure.Figure` objects, not registered with :mod:`matplotlib.pyplot`, so that
drawing one every few hundred training iterations leaks nothing; :meth:`Dashboard.show` is the
one place that goes through pyplot. Files are written atomically (a temporary file in the same
directory, then :func:`os.replace`), so a reader never sees half a PNG.

Example
-------
>>> from utils.generators import CopyTask
>>> task = CopyTask(size=8, seed=0)
>>> dashboard = Dashboard(ntm_fn, task, memory_shape=(128, 20), ntm_layer_fn=ntm_layer_fn,
...                       markers=[delimiter_marker()])          # doctest: +SKIP
>>> dashboard.save("copy_length_40.png", length=40)              # doctest: +SKIP
"""
import os
import sys

import matplotlib

if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .files import atomic_write  # noqa: E402
from .metrics import bit_errors  # noqa: E402

__all__ = [
    "MARKED_POINTS",
    "Dashboard",
    "delimiter_marker",
    "learning_curve",
    "moving_average",
    "plot_memory",
    "save_figure",
]

_DEFAULT_MARKER_STYLE = {"color": "tab:red", "linewidth": 1.0, "linestyle": "--"}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def save_figure(figure, path, dpi=100):
    """Write a figure to ``path`` atomically.

    The image is first written to a temporary file in the directory of ``path`` and then moved
    over ``path`` with :func:`os.replace`, so that ``path`` holds either its old contents or
    the complete new image, never a partial file.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure to write.
    path : str or os.PathLike
        Destination. The format follows the extension (``.png``, ``.pdf``, ``.svg``, ...);
        PNG when there is none.
    dpi : float
        Resolution in dots per inch (> 0).

    Returns
    -------
    str
        ``path`` as a string.
    """
    path = os.fspath(path)
    if not path:
        raise ValueError("path must be a non-empty file name")
    if not isinstance(dpi, (int, float, np.integer, np.floating)) or isinstance(dpi, bool) \
            or not dpi > 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    fmt = extension if extension else "png"
    supported = figure.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"path: cannot write {fmt!r} files; use one of {sorted(supported)}")
    return atomic_write(path, lambda stream: figure.savefig(stream, format=fmt, dpi=dpi))


def moving_average(values, window):
    """Trailing moving average, the same length as ``values``.

    ``result[i]`` is the mean of ``values[max(0, i - window + 1) : i + 1]``: the last
    ``window`` values, or all of them so far during the first ``window - 1`` steps.

    Parameters
    ----------
    values : array_like of shape ``(n,)``
        The series (e.g. one cost per training iteration).
    window : int
        Number of values averaged (>= 1); a window longer than the series is allowed.

    Returns
    -------
    ndarray of shape ``(n,)``, float64
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must have shape (n,), got shape {values.shape}")
    if not _is_int(window) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    window = int(window)
    if values.size == 0:
        return values.copy()
    totals = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (totals[ends] - totals[starts]) / (ends - starts)


def _heatmap(axis, image, cmap, vmin=None, vmax=None, rows=None, colorbar=True):
    """Draw ``image`` (rows on y, columns on x) with a colorbar; return the AxesImage.

    ``rows`` is the ``(first, last)`` row index the image starts and ends at, so that a cropped
    image keeps its true row labels.
    """
    first = 0 if rows is None else rows[0]
    height = image.shape[0]
    extent = (-0.5, image.shape[1] - 0.5, first + height - 0.5, first - 0.5)
    shown = axis.imshow(image, aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin,
                        vmax=vmax, extent=extent)
    # rows, columns and time steps are whole numbers: no ticks at 2.5
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if height == 1:
        axis.set_yticks([first])  # one row (a single channel): one tick, not fractions of it
    else:
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    if colorbar:
        axis.figure.colorbar(shown, ax=axis, fraction=0.025, pad=0.01)
    return shown


def plot_memory(memory, ax=None, cmap="bone", locations=None, title="memory",
                colorbar=True):
    """Heat map of the memory contents: one row per location, one column per element.

    Parameters
    ----------
    memory : array_like of shape ``(N, M)``
        The memory matrix (e.g. the last step of the NTM's memory sequence).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when None.
    cmap : str or Colormap
        Colour map; the scale spans the memory's own minimum and maximum.
    locations : (int, int), optional
        Draw only locations ``first .. last`` (inclusive), keeping their true numbers on the
        y axis.
    title : str
        Title of the panel.
    colorbar : bool
        Add a colorbar showing the scale.

    Returns
    -------
    matplotlib.image.AxesImage
        The image (``.axes`` and ``.figure`` lead to where it was drawn).
    """
    memory = np.asarray(memory, dtype=np.float64)
    if memory.ndim != 2:
        raise ValueError(f"memory must have shape (N, M), got shape {memory.shape}")
    if locations is not None:
        first, last = locations
        if not (_is_int(first) and _is_int(last) and 0 <= first <= last < memory.shape[0]):
            raise ValueError(f"locations must be (first, last) with 0 <= first <= last < "
                             f"N = {memory.shape[0]}, got {locations!r}")
        memory = memory[first:last + 1]
    else:
        first = 0
    if ax is None:
        ax = Figure(figsize=(4, 6), layout="constrained").add_subplot()
    shown = _heatmap(ax, memory, cmap, rows=(first, first + memory.shape[0] - 1),
                     colorbar=colorbar)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_ylabel("location")
    ax.set_xlabel("element (M)")
    return shown


# --------------------------------------------------------------------------------------------
# Markers
# --------------------------------------------------------------------------------------------

def delimiter_marker(channel=-1, style=None):
    """A marker at the first step where an input channel is on (> 0.5).

    For the copy-like tasks of :mod:`utils.generators` the last input channel is the
    delimiter, so ``delimiter_marker()`` marks the end of the sequence to be copied.

    Parameters
    ----------
    channel : int
        The input channel (negative values count from the end).
    style : dict, optional
        Keyword arguments of :meth:`matplotlib.axes.Axes.axvline`; a red dashed line by
        default.

    Returns
    -------
    dict
        ``{"location": callable(x, params) -> int or None, "style": dict}``, for the
        ``markers`` of :class:`Dashboard`. The location is None (nothing drawn) when the channel
        is never on.
    """
    if not _is_int(channel):
        raise ValueError(f"channel must be an integer, got {channel!r}")
    channel = int(channel)

    def location(x, params):
        x = np.asarray(x)
        if not -x.shape[-1] <= channel < x.shape[-1]:
            raise ValueError(f"delimiter_marker: channel {channel} is out of range for an input "
                             f"of {x.shape[-1]} channels")
        on = np.flatnonzero(x[:, channel] > 0.5)
        return int(on[0]) if on.size else None

    return {"location": location,
            "style": dict(_DEFAULT_MARKER_STYLE if style is None else style)}


def _check_marker(marker, index):
    if callable(marker) or (isinstance(marker, dict) and "location" in marker
                            and set(marker) <= {"location", "style"}):
        if isinstance(marker, dict) and not (marker.get("style") is None
                                             or isinstance(marker["style"], dict)):
            raise ValueError(f"markers[{index}]['style'] must be a dict of line keyword "
                             f"arguments, got {marker['style']!r}")
        return marker
    raise ValueError(f"markers[{index}] must be a dict {{'location': int or callable(x, params), "
                     f"'style': dict}} or a callable(x, y) returning one, got {marker!r}")


# --------------------------------------------------------------------------------------------
# Dashboard
# --------------------------------------------------------------------------------------------

class Dashboard:
    """Heat maps of one episode of a task, as an NTM processes it.

    Parameters
    ----------
    ntm_fn : callable
        ``ntm_fn(x)`` with ``x`` of shape ``(batch, time, input_size)`` returns the predictions,
        shape ``(batch, time, output_size)`` (probabilities, drawn on a fixed 0-1 scale).
    generator : utils.generators.Task
        The task the episodes come from. Its ``sample_with_mask(**params)`` is used when it has
        one (the mask gives the steps counted in the bit errors), ``sample(**params)`` otherwise
        (every step counts).
    memory_shape : (int, int)
        ``(N, M)``: the number of memory locations and the size of each.
    ntm_layer_fn : callable, optional
        ``ntm_layer_fn(x)`` returns the NTM's details ``[memory, hidden, state, write_weights,
        read_weights]`` as NumPy arrays, batch-major: memory ``(batch, time, N, M)``, weightings
        ``(batch, time, heads, N)`` (what ``get_output(l_ntm, get_details=True)`` compiles to).
        Without it only the input, target and prediction are drawn.
    cmap : str or Colormap
        Colour map of every panel.
    markers : sequence
        Vertical lines drawn at given time steps on every panel over time. Each item is a dict
        ``{"location": int or callable(x, params) -> int or None, "style": dict}`` (``x`` is
        the episode's input, shape ``(time, input_size)``; ``params`` the episode parameters;
        ``style`` keyword arguments of :meth:`~matplotlib.axes.Axes.axvline`; a None location
        draws nothing), or a callable ``(x, y)`` returning such a dict. See
        :func:`delimiter_marker`.
    crop : bool
        Show only the range of memory locations the heads actually visit (a weighting of at
        least ``crop_threshold`` at some step), in the weighting and memory panels.
    crop_threshold : float
        Weighting above which a location counts as visited (in (0, 1]).

    Notes
    -----
    Panels, top to bottom: input, target, prediction (channels on the y axis, time on the x
    axis); with ``ntm_layer_fn``, the write weighting of each write head and the read weighting
    of each read head (locations on the y axis, time on the x axis, each on a scale from 0 to
    its largest value), and the memory after the last step (locations by elements).
    """

    def __init__(self, ntm_fn, generator, memory_shape, ntm_layer_fn=None, cmap="bone",
                 markers=(), crop=False, crop_threshold=0.05):
        if not callable(ntm_fn):
            raise ValueError(f"ntm_fn must be callable (x -> predictions), got {ntm_fn!r}")
        if ntm_layer_fn is not None and not callable(ntm_layer_fn):
            raise ValueError(f"ntm_layer_fn must be callable (x -> details) or None, "
                             f"got {ntm_layer_fn!r}")
        if not (callable(getattr(generator, "sample", None))
                or callable(getattr(generator, "sample_with_mask", None))):
            raise ValueError(f"generator must be a task with a sample(**params) method, "
                             f"got {generator!r}")
        try:
            shape = tuple(memory_shape)
        except TypeError:
            shape = ()
        if len(shape) != 2 or not all(_is_int(size) and size >= 1 for size in shape):
            raise ValueError(f"memory_shape must be (N, M), two integers >= 1, "
                             f"got {memory_shape!r}")
        if markers is None:
            markers = ()
        if isinstance(markers, dict) or callable(markers):
            raise ValueError("markers must be a list of markers, not a single marker")
        self.markers = [_check_marker(marker, index) for index, marker in enumerate(markers)]
        if not isinstance(crop, (bool, np.bool_)):
            raise ValueError(f"crop must be True or False, got {crop!r}")
        if not 0.0 < crop_threshold <= 1.0:
            raise ValueError(f"crop_threshold must lie in (0, 1], got {crop_threshold!r}")
        self.ntm_fn = ntm_fn
        self.ntm_layer_fn = ntm_layer_fn
        self.generator = generator
        self.memory_shape = (int(shape[0]), int(shape[1]))
        self.cmap = cmap
        self.crop = bool(crop)
        self.crop_threshold = float(crop_threshold)

    # sampling -----------------------------------------------------------------------------

    def _sample(self, **params):
        """One episode ``(x, y, mask, params)``, batch 1; ``params`` completed if possible."""
        generator = self.generator
        if callable(getattr(generator, "sample_params", None)):
            params = generator.sample_params(**params)
        if callable(getattr(generator, "sample_with_mask", None)):
            x, y, mask = generator.sample_with_mask(**params)
        else:
            x, y = generator.sample(**params)
            mask = None
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
            raise ValueError(f"generator must return x and y of shape (batch, time, features) "
                             f"with the same batch and time, got {x.shape} and {y.shape}")
        if mask is not None:
            mask = np.asarray(mask)[:1]
        return x[:1], y[:1], mask, dict(params)

    def sample(self, **params):
        """Draw one episode (batch 1) from the generator.

        Parameters
        ----------
        **params
            Episode parameters to fix, passed to the generator (e.g. ``length=40``).

        Returns
        -------
        x : ndarray of shape ``(1, time, input_size)``
        y : ndarray of shape ``(1, time, output_size)``
        """
        x, y, _, _ = self._sample(**params)
        return x, y

    # checks -------------------------------------------------------------------------------

    @staticmethod
    def _episode_array(name, array):
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[np.newaxis]
        if array.ndim != 3 or array.shape[0] < 1:
            raise ValueError(f"{name} must have shape (time, features) or (batch, time, "
                             f"features), got shape {array.shape}")
        return array[:1]

    def _predict(self, x):
        prediction = np.asarray(self.ntm_fn(x))
        time = x.shape[1]
        if prediction.ndim != 3 or prediction.shape[:2] != x.shape[:2]:
            raise ValueError(f"ntm_fn(x) must return predictions of shape (batch, time, "
                             f"out_features) = (1, {time}, out_features), got shape "
                             f"{prediction.shape}")
        return prediction[0]

    def _details(self, x):
        details = self.ntm_layer_fn(x)
        if not isinstance(details, (list, tuple)) or len(details) != 5:
            raise ValueError("ntm_layer_fn(x) must return the list [memory, hidden, state, "
                             "write_weights, read_weights]")
        memory, _, _, write_weights, read_weights = (np.asarray(item) for item in details)
        time = x.shape[1]
        N, M = self.memory_shape
        if memory.ndim != 4 or memory.shape[:2] != x.shape[:2] or memory.shape[2:] != (N, M):
            raise ValueError(f"ntm_layer_fn(x): memory must have shape (batch, time, N, M) = "
                             f"(1, {time}, {N}, {M}) (memory_shape={self.memory_shape}), got "
                             f"shape {memory.shape}")
        for name, weights in (("write_weights", write_weights), ("read_weights", read_weights)):
            if weights.ndim != 4 or weights.shape[:2] != x.shape[:2] or weights.shape[3] != N:
                raise ValueError(f"ntm_layer_fn(x): {name} must have shape (batch, time, heads, "
                                 f"N) = (1, {time}, heads, {N}), got shape {weights.shape}")
        return memory[0, -1], write_weights[0], read_weights[0]

    def _resolve_markers(self, x, y, params):
        """``[(location, style), ...]`` for an episode of inputs ``x`` and targets ``y``."""
        time = x.shape[0]
        resolved = []
        for index, marker in enumerate(self.markers):
            if callable(marker):
                marker = marker(x, y)
                if not isinstance(marker, dict) or "location" not in marker:
                    raise ValueError(f"markers[{index}](x, y) must return a dict with a "
                                     f"'location', got {marker!r}")
            location = marker["location"]
            if callable(location):
                location = location(x, params)
            if location is None:
                continue
            if not _is_int(location) or not 0 <= location < time:
                raise ValueError(f"markers[{index}]: location must be an integer time step in "
                                 f"[0, {time}), got {location!r}")
            style = marker.get("style")
            resolved.append((int(location), dict(_DEFAULT_MARKER_STYLE if style is None
                                                 else style)))
        return resolved

    def _crop_range(self, write_weights, read_weights):
        """``(first, last)`` locations visited by some head, with a little margin."""
        N = self.memory_shape[0]
        if not self.crop:
            return 0, N - 1
        peak = np.zeros(N)
        for weights in (write_weights, read_weights):
            if weights.size:
                peak = np.maximum(peak, weights.max(axis=(0, 1)))
        visited = np.flatnonzero(peak >= self.crop_threshold)
        if visited.size == 0:
            return 0, N - 1
        margin = 2
        return max(int(visited[0]) - margin, 0), min(int(visited[-1]) + margin, N - 1)

    # drawing ------------------------------------------------------------------------------

    def figure(self, x=None, y=None, mask=None, **params):
        """Draw one episode.

        Parameters
        ----------
        x, y : array_like, optional
            The episode's input and target, shape ``(time, features)`` or ``(batch, time,
            features)`` (the first sequence is drawn). Both or neither; when left out an episode
            is drawn from the generator with ``params``.
        mask : array_like of shape ``(time,)`` or ``(batch, time)``, optional
            The steps counted in the bit errors, with ``x`` and ``y``; all steps when None.
        **params
            Episode parameters to fix when sampling (e.g. ``length=40``); with ``x`` and ``y``
            they are only passed to the markers and shown in the title.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return self._draw(x, y, mask, params, Figure)

    def _draw(self, x, y, mask, params, make_figure):
        if (x is None) != (y is None):
            raise ValueError("x and y must be given together (or both left out to sample)")
        if x is None:
            if mask is not None:
                raise ValueError("mask can only be given with x and y")
            x, y, mask, params = self._sample(**params)
        else:
            x = self._episode_array("x", x)
            y = self._episode_array("y", y)
            if x.shape[1] != y.shape[1]:
                raise ValueError(f"x and y must have the same number of time steps, got "
                                 f"{x.shape[1]} and {y.shape[1]}")
            if mask is not None:
                mask = np.asarray(mask)
                if mask.ndim == 1:
                    mask = mask[np.newaxis]
                if mask.ndim != 2 or mask.shape[1] != x.shape[1]:
                    raise ValueError(f"mask must have shape (time,) or (batch, time) with time "
                                     f"= {x.shape[1]}, got shape {mask.shape}")
                mask = mask[:1]
        prediction = self._predict(x)
        details = self._details(x) if self.ntm_layer_fn is not None else None
        time = x.shape[1]
        episode_x, episode_y = x[0], y[0]
        markers = self._resolve_markers(episode_x, episode_y, params)

        prediction_title = "prediction"
        if prediction.shape == episode_y.shape:
            errors = bit_errors(prediction[np.newaxis], y, mask, reduce="sum")
            scope = "" if mask is None else " on scored steps"
            prediction_title = f"prediction ({errors:g} bit errors{scope})"
        # (title, image with rows on y, vmin, vmax, y label, heights in inches)
        panels = [
            ("input", episode_x.T, 0.0, 1.0, "channel", None),
            ("target", episode_y.T, 0.0, 1.0, "channel", None),
            (prediction_title, prediction.T, 0.0, 1.0, "channel", None),
        ]
        memory = rows = None
        if details is not None:
            memory, write_weights, read_weights = details
            rows = self._crop_range(write_weights, read_weights)
            first, last = rows
            for kind, weights in (("write", write_weights), ("read", read_weights)):
                heads = weights.shape[1]
                for head in range(heads):
                    image = weights[:, head, first:last + 1].T
                    label = f"{kind} weighting" + (f" (head {head})" if heads > 1 else "")
                    top = float(image.max()) if image.size and image.max() > 0 else 1.0
                    panels.append((label, image, 0.0, top, "location", rows))

        def height(image, is_weighting):
            if is_weighting:
                return float(np.clip(0.03 * image.shape[0], 1.4, 2.6))
            return float(np.clip(0.13 * image.shape[0], 0.8, 1.8))

        heights = [height(image, image_rows is not None)
                   for _, image, _, _, _, image_rows in panels]
        if memory is not None:
            heights.append(float(np.clip(0.03 * (rows[1] - rows[0] + 1), 2.0, 3.2)))
        width = float(np.clip(4.0 + 0.06 * time, 8.0, 20.0))
        figure = make_figure(figsize=(width, sum(heights) + 0.45 * len(heights) + 0.6),
                             layout="constrained")
        grid = figure.add_gridspec(len(heights), 1, height_ratios=heights)

        first_axis = None
        time_axes = []
        for index, (title, image, vmin, vmax, ylabel, image_rows) in enumerate(panels):
            axis = figure.add_subplot(grid[index], sharex=first_axis)
            first_axis = first_axis or axis
            _heatmap(axis, image, self.cmap, vmin=vmin, vmax=vmax, rows=image_rows)
            axis.set_title(title, fontsize=10, loc="left")
            axis.set_ylabel(ylabel, fontsize=9)
            for location, style in markers:
                axis.axvline(location, **style)
            time_axes.append(axis)
        for axis in time_axes[:-1]:
            axis.tick_params(labelbottom=False)
        time_axes[-1].set_xlabel("time step")
        time_axes[-1].set_xlim(-0.5, time - 0.5)
        if memory is not None:
            axis = figure.add_subplot(grid[len(panels)])
            plot_memory(memory, ax=axis, cmap=self.cmap, locations=rows,
                        title="memory after the last step")
        description = ", ".join(f"{name}={value}" for name, value in params.items())
        figure.suptitle(f"{type(self.generator).__name__}"
                        + (f" ({description})" if description else ""), fontsize=11)
        return figure

    def save(self, path, x=None, y=None, dpi=100, **params):
        """Draw one episode and write it to ``path`` atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Destination (PNG unless the extension names another format).
        x, y : array_like, optional
            The episode to draw (see :meth:`figure`); sampled with ``params`` when left out.
        dpi : float
            Resolution in dots per inch.
        **params
            Episode parameters (see :meth:`figure`), plus ``mask``.

        Returns
        -------
        str
            ``path``.
        """
        figure = self.figure(x, y, **params)
        return save_figure(figure, path, dpi=dpi)

    def show(self, x=None, y=None, block=None, **params):
        """Draw one episode in a pyplot window and call :func:`matplotlib.pyplot.show`.

        Only this method uses pyplot; with the Agg backend (no display) nothing appears.

        Parameters
        ----------
        x, y : array_like, optional
            The episode to draw (see :meth:`figure`).
        block : bool, optional
            Passed to :func:`matplotlib.pyplot.show`.
        **params
            Episode parameters (see :meth:`figure`), plus ``mask``.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        mask = params.pop("mask", None)
        figure = self._draw(x, y, mask, params, plt.figure)
        plt.show(block=block)
        return figure


# --------------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------------

#: Most points of a learning curve's other costs drawn with a marker each.
MARKED_POINTS = 60


def _other_curve(name, points):
    """``(iterations, values)`` of one of :func:`learning_curve`'s ``others``, checked."""
    try:
        at, costs = (np.asarray(part, dtype=np.float64) for part in points)
    except (TypeError, ValueError):
        raise ValueError(f"others[{name!r}] must be a pair (iterations, values) of numbers") \
            from None
    if at.ndim != 1 or at.shape != costs.shape or at.size == 0:
        raise ValueError(f"others[{name!r}]: iterations and values must have the same shape "
                         f"(n,) with n >= 1, got {at.shape} and {costs.shape}")
    if not np.all(np.isfinite(costs)):
        raise ValueError(f"others[{name!r}]: values must be finite (found NaN or infinity)")
    return at, costs


def learning_curve(values, path=None, window=100, ylabel="bits per sequence", title=None,
                   log_scale=True, ax=None, iterations=None, dpi=100, events=(), label=None,
                   others=None):
    """Plot a training cost against the iterations, with its moving average.

    Parameters
    ----------
    values : array_like of shape ``(n,)``
        One value per recorded iteration (finite).
    path : str or os.PathLike, optional
        Write the figure there, atomically (see :func:`save_figure`).
    window : int
        Window of the trailing moving average (see :func:`moving_average`), >= 1.
    ylabel : str
        Label of the y axis.
    title : str, optional
        Title of the plot.
    log_scale : bool
        Use a logarithmic y axis, when every value is positive (linear otherwise).
    ax : matplotlib.axes.Axes, optional
        Draw there; a new figure is made when None.
    iterations : array_like of shape ``(n,)``, optional
        The iteration number of each value; ``0 .. n-1`` by default.
    dpi : float
        Resolution when saving.
    events : sequence of (iteration, label)
        Changes of the training to mark with a dashed vertical line each, its label written
        along it (e.g. ``[(1500, "focus penalty 0.1 on")]``).
    label : str, optional
        Name of ``values`` in the legend: "LABEL" and "LABEL, moving average (WINDOW)"
        (default: "value" and "moving average (WINDOW)").
    others : dict of str to (iterations, values), optional
        Further costs on the same axes, each a line (with a marker per point, up to
        ``MARKED_POINTS`` points), named by its key in the legend (e.g. ``{"validation":
        ([500, 1000], [3.2, 0.4])}``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must have shape (n,) with n >= 1, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite (found NaN or infinity)")
    average = moving_average(values, window)
    if iterations is None:
        iterations = np.arange(values.size)
    else:
        iterations = np.asarray(iterations)
        if iterations.shape != values.shape:
            raise ValueError(f"iterations must have the shape of values {values.shape}, got "
                             f"shape {iterations.shape}")
    others = {name: _other_curve(name, points) for name, points in (others or {}).items()}
    if ax is None:
        ax = Figure(figsize=(8, 4.5), layout="constrained").add_subplot()
    line, = ax.plot(iterations, values, linewidth=0.8, alpha=0.3,
                    label="value" if label is None else label)
    ax.plot(iterations, average, linewidth=2.0, color=line.get_color(),
            label=f"{'' if label is None else label + ', '}moving average ({window})")
    for name, (at, costs) in others.items():
        # A marker per point while they can be told apart; a long run's are a line.
        ax.plot(at, costs, linewidth=1.2, marker="o" if at.size <= MARKED_POINTS else None,
                markersize=3, label=name)
    for iteration, label in events:
        ax.axvline(iteration, color="0.4", linestyle="--", linewidth=1.0)
        # Along the line rather than in the legend: several changes (a learning-rate
        # schedule) would be told apart there by their order only.
        ax.annotate(label, (iteration, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(-2, -4), textcoords="offset points", rotation=90, ha="right",
                    va="top", fontsize=8, color="0.3")
    positive = np.all(values > 0) and all(np.all(costs > 0) for _, costs in others.values())
    ax.set_yscale("log" if log_scale and positive else "linear")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    # Where it hides least of the curves (a falling curve leaves the lower left empty, unless
    # it ends low); the events are labelled at the top.
    ax.legend(loc="best")
    figure = ax.figure
    if path is not None:
        save_figure(figure, path, dpi=dpi)
    return figure
