"""Tests of the heat maps and learning curves (utils.visualization).

No PyTensor graph is compiled: the NTM is replaced by NumPy functions returning arrays of the
shapes the real ones return.
"""
import os

import numpy as np
import pytest

from utils.generators import CopyTask
from utils.visualization import (
    MARKED_POINTS,
    Dashboard,
    delimiter_marker,
    learning_curve,
    moving_average,
    plot_memory,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEMORY_SHAPE = (16, 6)
NUM_WRITES, NUM_READS = 1, 2


def fake_ntm_fn(x):
    """A perfect copier for CopyTask: after the delimiter, repeat the input's bits."""
    x = np.asarray(x)
    size = x.shape[2] - 1
    length = int(np.argmax(x[0, :, -1]))
    prediction = np.full(x.shape[:2] + (size,), 0.1)
    prediction[:, length + 1:2 * length + 1] = 0.1 + 0.8 * x[:, :length, :size]
    return prediction


def fake_ntm_layer_fn(x):
    """Details of the right shapes; the heads move one location forward per step."""
    batch, time, _ = np.shape(x)
    N, M = MEMORY_SHAPE
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(batch, time, N, M))
    hidden = rng.normal(size=(batch, time, 10))
    state = rng.normal(size=(batch, time, 10))
    positions = np.arange(time) % N
    write = np.zeros((batch, time, NUM_WRITES, N))
    read = np.zeros((batch, time, NUM_READS, N))
    write[:, np.arange(time), 0, positions] = 1.0
    for head in range(NUM_READS):
        read[:, np.arange(time), head, positions] = 0.5 + 0.5 * head
    return [memory, hidden, state, write, read]


def image_axes(figure):
    return [axis for axis in figure.axes if axis.images]


def marker_positions(axis):
    return [line.get_xdata()[0] for line in axis.lines]


def assert_png(path):
    with open(path, "rb") as stream:
        data = stream.read()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000


# --------------------------------------------------------------------------------------------
# moving_average
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [1, 2, 3, 7, 50, 1000])
def test_moving_average_equals_explicit_loop(window):
    values = np.random.default_rng(1).normal(size=50) * 10
    expected = [np.mean(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]
    result = moving_average(values, window)
    assert result.shape == values.shape
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


def test_moving_average_of_empty_series_is_empty():
    assert moving_average([], 5).shape == (0,)


@pytest.mark.parametrize("window", [0, -3, 2.5, True, "10"])
def test_moving_average_rejects_bad_window(window):
    with pytest.raises(ValueError, match="window"):
        moving_average([1.0, 2.0, 3.0], window)


def test_moving_average_rejects_2d_values():
    with pytest.raises(ValueError, match=r"values must have shape \(n,\)"):
        moving_average(np.ones((3, 2)), 2)


# --------------------------------------------------------------------------------------------
# Dashboard
# --------------------------------------------------------------------------------------------

def make_dashboard(with_details=True, **kwargs):
    task = CopyTask(size=8, min_length=1, max_length=10, seed=0)
    kwargs.setdefault("markers", [delimiter_marker()])
    return Dashboard(fake_ntm_fn, task, MEMORY_SHAPE,
                     ntm_layer_fn=fake_ntm_layer_fn if with_details else None, **kwargs)


@pytest.mark.parametrize("end_marker", [False, True])
def test_sample_passes_fixed_params_through(end_marker):
    task = CopyTask(size=8, end_marker=end_marker, batch_size=3, seed=0)
    dashboard = Dashboard(fake_ntm_fn, task, MEMORY_SHAPE)
    x, y = dashboard.sample(length=5)
    # CopyTask: 5 vectors, the delimiter, 5 output steps (+ 1 with the end marker); batch 1
    time = 2 * 5 + 1 + int(end_marker)
    assert x.shape == (1, time, 9)
    assert y.shape == (1, time, 8 + int(end_marker))
    assert np.argmax(x[0, :, -1]) == 5


def test_save_without_details_writes_png_with_three_panels_and_markers(tmp_path):
    dashboard = make_dashboard(with_details=False)
    path = dashboard.save(tmp_path / "episode.png", length=6)
    assert path == str(tmp_path / "episode.png")
    assert_png(path)
    assert os.listdir(tmp_path) == ["episode.png"]  # no temporary file left behind

    figure = dashboard.figure(length=6)
    panels = image_axes(figure)
    assert len(panels) == 3
    assert [axis.get_title(loc="left").split(" ")[0] for axis in panels] == \
        ["input", "target", "prediction"]
    for axis in panels:
        assert marker_positions(axis) == [6]
    assert panels[-1].get_xlabel() == "time step"
    assert "0 bit errors" in panels[2].get_title(loc="left")


def test_save_with_details_draws_every_head_and_the_memory(tmp_path):
    dashboard = make_dashboard(with_details=True)
    path = dashboard.save(str(tmp_path / "episode.png"), length=7, dpi=60)
    assert_png(path)

    figure = dashboard.figure(length=7)
    panels = image_axes(figure)
    # input, target, prediction, 1 write head, 2 read heads, memory
    assert len(panels) == 3 + NUM_WRITES + NUM_READS + 1
    titles = [axis.get_title(loc="left") for axis in panels]
    assert titles[3] == "write weighting"
    assert titles[4:6] == ["read weighting (head 0)", "read weighting (head 1)"]
    assert titles[6].startswith("memory")
    for axis in panels[:-1]:  # every panel over time carries the delimiter marker
        assert marker_positions(axis) == [7]
    assert marker_positions(panels[-1]) == []  # the memory panel has no time axis
    # weightings have locations on y, time on x; memory is N x M
    time = 2 * 7 + 1
    assert panels[3].images[0].get_array().shape == (MEMORY_SHAPE[0], time)
    assert panels[-1].images[0].get_array().shape == MEMORY_SHAPE
    # one colorbar per image
    assert len(figure.axes) == 2 * len(panels)


def test_figure_of_given_episode_and_custom_markers():
    task = CopyTask(size=8, seed=3)
    x, y = task.sample(length=4)
    markers = [
        {"location": 2, "style": {"color": "green"}},
        lambda x, y: {"location": lambda x, params: x.shape[0] - 1},
        {"location": lambda x, params: None},  # draws nothing
    ]
    dashboard = Dashboard(fake_ntm_fn, task, MEMORY_SHAPE, fake_ntm_layer_fn, markers=markers)
    figure = dashboard.figure(x[0], y[0])
    for axis in image_axes(figure)[:-1]:
        assert marker_positions(axis) == [2, 8]
        assert axis.lines[0].get_color() == "green"


def test_a_single_channel_gets_one_whole_tick_and_many_channels_whole_ticks():
    from utils.generators import DynamicNGramsTask

    task = DynamicNGramsTask(n=3, length=12, seed=0)

    def predict(x):  # one output channel, like the input
        return np.full(np.shape(x), 0.5)

    dashboard = Dashboard(predict, task, MEMORY_SHAPE)
    x, y = task.sample()
    input_axis = image_axes(dashboard.figure(x[0], y[0]))[0]
    assert list(input_axis.get_yticks()) == [0]
    copy_task = CopyTask(size=8, seed=1)
    x, y = copy_task.sample(length=4)
    copy_axis = image_axes(Dashboard(fake_ntm_fn, copy_task, MEMORY_SHAPE).figure(x[0], y[0]))[0]
    ticks = [t for t in copy_axis.get_yticks() if -0.5 <= t <= 8.5]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_generator_without_mask_counts_every_step():
    class NoMaskTask:
        def sample(self, **params):
            x, y = CopyTask(size=4, seed=0).sample(**params)
            return x, y

    dashboard = Dashboard(fake_ntm_fn, NoMaskTask(), MEMORY_SHAPE)
    x, y = dashboard.sample(length=3)
    assert x.shape == (1, 7, 5)
    title = image_axes(dashboard.figure(length=3))[2].get_title(loc="left")
    assert "bit errors" in title and "scored" not in title


def test_crop_limits_the_location_axis_to_visited_locations():
    task = CopyTask(size=8, seed=0)
    dashboard = Dashboard(fake_ntm_fn, task, (64, 6), crop=True,
                          ntm_layer_fn=lambda x: _details_with_memory(x, 64))
    panels = image_axes(dashboard.figure(length=3))  # 7 steps: locations 0..6 visited
    top, bottom = sorted(panels[3].get_ylim())
    assert bottom <= 64 and top >= -0.5
    assert panels[3].images[0].get_array().shape[0] == 7 + 2  # visited plus the margin
    assert panels[-1].images[0].get_array().shape == (9, 6)


def _details_with_memory(x, N):
    batch, time, _ = np.shape(x)
    memory = np.zeros((batch, time, N, 6))
    weights = np.zeros((batch, time, 1, N))
    weights[:, np.arange(time), 0, np.arange(time)] = 1.0
    return [memory, None, None, weights, weights]


def test_show_does_not_fail_headless(monkeypatch):
    import matplotlib.pyplot as plt

    calls = []
    monkeypatch.setattr(plt, "show", lambda block=None: calls.append(block))
    figure = make_dashboard(with_details=False).show(length=2)
    assert calls == [None]
    assert len(image_axes(figure)) == 3
    plt.close(figure)


# bad inputs ----------------------------------------------------------------------------------

def test_predictions_must_be_3d():
    dashboard = Dashboard(lambda x: np.zeros(x.shape[1:]), CopyTask(seed=0), MEMORY_SHAPE)
    with pytest.raises(ValueError, match=r"ntm_fn\(x\) must return predictions of shape"):
        dashboard.figure(length=2)


def test_weights_must_be_4d():
    def bad_layer_fn(x):
        details = fake_ntm_layer_fn(x)
        details[4] = details[4][:, :, 0]
        return details

    dashboard = Dashboard(fake_ntm_fn, CopyTask(seed=0), MEMORY_SHAPE, bad_layer_fn)
    with pytest.raises(ValueError, match=r"read_weights must have shape \(batch, time, heads"):
        dashboard.figure(length=2)


def test_memory_must_match_memory_shape():
    dashboard = Dashboard(fake_ntm_fn, CopyTask(seed=0), (32, 6), fake_ntm_layer_fn)
    with pytest.raises(ValueError, match=r"memory must have shape .*memory_shape"):
        dashboard.figure(length=2)


def test_details_must_be_a_list_of_five():
    dashboard = Dashboard(fake_ntm_fn, CopyTask(seed=0), MEMORY_SHAPE,
                          lambda x: fake_ntm_layer_fn(x)[:4])
    with pytest.raises(ValueError, match="ntm_layer_fn"):
        dashboard.figure(length=2)


@pytest.mark.parametrize("kwargs, name", [
    ({"memory_shape": (16,)}, "memory_shape"),
    ({"memory_shape": (16, 0)}, "memory_shape"),
    ({"ntm_fn": "not callable"}, "ntm_fn"),
    ({"generator": object()}, "generator"),
    ({"ntm_layer_fn": 3}, "ntm_layer_fn"),
    ({"markers": [{"where": 3}]}, r"markers\[0\]"),
    ({"markers": {"location": 3}}, "markers"),
    ({"crop": "yes"}, "crop"),
])
def test_constructor_rejects_bad_arguments(kwargs, name):
    arguments = {"ntm_fn": fake_ntm_fn, "generator": CopyTask(seed=0),
                 "memory_shape": MEMORY_SHAPE}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
        Dashboard(**arguments)


def test_figure_rejects_bad_episodes_and_markers():
    dashboard = make_dashboard(with_details=False)
    x, y = dashboard.sample(length=3)
    with pytest.raises(ValueError, match="x and y must be given together"):
        dashboard.figure(x)
    with pytest.raises(ValueError, match=r"x must have shape \(time, features\)"):
        dashboard.figure(x[0, 0], y)
    with pytest.raises(ValueError, match="same number of time steps"):
        dashboard.figure(x[:, :-1], y)
    with pytest.raises(ValueError, match="mask must have shape"):
        dashboard.figure(x, y, mask=np.ones(3))
    bad_marker = Dashboard(fake_ntm_fn, CopyTask(seed=0), MEMORY_SHAPE,
                           markers=[{"location": 100}])
    with pytest.raises(ValueError, match=r"markers\[0\]: location must be an integer"):
        bad_marker.figure(length=2)


def test_save_is_atomic_and_rejects_unknown_formats(tmp_path):
    dashboard = make_dashboard(with_details=False)
    target = tmp_path / "episode.png"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="path"):
        dashboard.save(tmp_path / "episode.unknownformat", length=2)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["episode.png"]
    dashboard.save(target, length=2)
    assert_png(target)
    assert sorted(os.listdir(tmp_path)) == ["episode.png"]


# --------------------------------------------------------------------------------------------
# learning_curve and plot_memory
# --------------------------------------------------------------------------------------------

def test_learning_curve_writes_png_on_log_scale(tmp_path):
    values = 100 * np.exp(-np.linspace(0, 5, 300)) + 0.01
    path = tmp_path / "curve.png"
    figure = learning_curve(values, path=path, window=20, title="copy")
    assert_png(path)
    assert os.listdir(tmp_path) == ["curve.png"]
    axis = figure.axes[0]
    assert axis.get_yscale() == "log"
    assert axis.get_title() == "copy"
    raw, average = axis.lines
    np.testing.assert_allclose(raw.get_ydata(), values)
    np.testing.assert_allclose(average.get_ydata(), moving_average(values, 20))
    assert average.get_linewidth() > raw.get_linewidth()


@pytest.mark.parametrize("values", [[0.0, 1.0, 2.0], [-1.0, 2.0, 3.0]])
def test_learning_curve_is_linear_with_zeros_or_negatives(values):
    assert learning_curve(values, window=2).axes[0].get_yscale() == "linear"


def test_learning_curve_options():
    values = [5.0, 4.0, 3.0, 2.0]
    figure = learning_curve(values, log_scale=False, iterations=[10, 20, 30, 40])
    axis = figure.axes[0]
    assert axis.get_yscale() == "linear"
    np.testing.assert_array_equal(axis.lines[0].get_xdata(), [10, 20, 30, 40])

    from matplotlib.figure import Figure
    own = Figure().add_subplot()
    assert learning_curve(values, ax=own, ylabel="loss") is own.figure
    assert own.get_ylabel() == "loss"


def test_learning_curve_marks_events_with_a_dashed_line_named_along_it():
    figure = learning_curve([5.0, 4.0, 3.0, 2.0], iterations=[10, 20, 30, 40],
                            events=[(20, "focus penalty 0.1 on"), (30, "learning rate 1e-05")])
    axis = figure.axes[0]
    raw, average, *events = axis.lines
    assert [list(event.get_xdata()) for event in events] == [[20, 20], [30, 30]]
    assert all(event.get_linestyle() == "--" for event in events)
    labels = [(text.get_text(), text.xy[0]) for text in axis.texts]
    assert labels == [("focus penalty 0.1 on", 20), ("learning rate 1e-05", 30)]
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == ["value", "moving average (100)"]


def test_learning_curve_draws_other_costs_with_markers_named_in_the_legend():
    figure = learning_curve([5.0, 4.0, 3.0, 2.0], iterations=[10, 20, 30, 40], window=2,
                            label="training",
                            others={"validation": ([20, 40], [4.5, 2.5]),
                                    "validation, mean": ([40], [2.25])})
    axis = figure.axes[0]
    raw, average, validation, mean = axis.lines
    np.testing.assert_array_equal(validation.get_xdata(), [20, 40])
    np.testing.assert_array_equal(validation.get_ydata(), [4.5, 2.5])
    np.testing.assert_array_equal(mean.get_ydata(), [2.25])
    assert validation.get_marker() == mean.get_marker() == "o" and raw.get_marker() == "None"
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == ["training", "training, moving average (2)", "validation",
                      "validation, mean"]
    assert axis.get_yscale() == "log"
    # A long run's validations are a line without markers.
    many = np.arange(1, MARKED_POINTS + 2)
    long_run = learning_curve([5.0, 4.0], others={"validation": (many, 1.0 / many)})
    assert long_run.axes[0].lines[-1].get_marker() == "None"
    # A cost at or under zero among the others makes the axis linear, as in the values.
    assert learning_curve([5.0, 4.0], others={"v": ([1], [0.0])}).axes[0].get_yscale() == \
        "linear"


@pytest.mark.parametrize("kwargs, name", [
    ({"values": [1.0, 2.0], "others": {"validation": ([1, 2], [1.0])}}, "validation"),
    ({"values": [1.0, 2.0], "others": {"validation": ([1], [np.inf])}}, "finite"),
    ({"values": [1.0, 2.0], "others": {"validation": ([], [])}}, "validation"),
    ({"values": [1.0, 2.0], "others": {"validation": 3}}, "pair"),
    ({"values": np.ones((3, 2))}, "values"),
    ({"values": []}, "values"),
    ({"values": [1.0, np.nan]}, "finite"),
    ({"values": [1.0, 2.0], "window": 0}, "window"),
    ({"values": [1.0, 2.0], "iterations": [1, 2, 3]}, "iterations"),
])
def test_learning_curve_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        learning_curve(**kwargs)


def test_plot_memory_and_save_figure(tmp_path):
    memory = np.arange(12.0).reshape(4, 3)
    image = plot_memory(memory, locations=(1, 2))
    assert image.get_array().shape == (2, 3)
    assert sorted(image.axes.get_ylim()) == [0.5, 2.5]
    assert_png(save_figure(image.figure, tmp_path / "memory"))
    with pytest.raises(ValueError, match=r"memory must have shape \(N, M\)"):
        plot_memory(np.ones(3))
    with pytest.raises(ValueError, match="locations"):
        plot_memory(memory, locations=(2, 9))
    with pytest.raises(ValueError, match="dpi"):
        save_figure(image.figure, tmp_path / "memory.png", dpi=0)
