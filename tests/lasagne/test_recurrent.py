"""Tests of the recurrent layers against a step-by-step NumPy reference."""
import time
import zlib

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.lasagne import init, nonlinearities
from ntm.lasagne.layers import (CustomRecurrentLayer, DenseLayer, GRULayer, Gate, InputLayer,
                                LSTMLayer, RecurrentLayer, get_all_params, get_output,
                                get_output_shape, set_all_param_values)

FLOATX = pytensor.config.floatX
TOL = 1e-6 if FLOATX == "float64" else 1e-4
BATCH, STEPS, FEATURES, UNITS = 3, 6, 4, 5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --- NumPy reference -------------------------------------------------------------------------

def reference_run(step, x, states, mask=None, backwards=False):
    """Run ``step(x_t, *states) -> states`` over x's time axis; masked steps keep the state.

    Returns the last state component at every step (in the input's time order) and its final
    value, the one after the last step processed.
    """
    batch, steps = x.shape[:2]
    states = [np.array(s, dtype=float) for s in states]
    outputs = np.zeros((batch, steps) + states[-1].shape[1:])
    order = range(steps - 1, -1, -1) if backwards else range(steps)
    for t in order:
        new = step(x[:, t], *states)
        if mask is not None:
            keep = mask[:, t][:, None] != 0
            new = [np.where(keep, n, s) for n, s in zip(new, states)]
        states = new
        outputs[:, t] = states[-1]
    return outputs, states[-1]


def rnn_reference(layer):
    W, U, b = (p.get_value() for p in (layer.W_in_to_hid, layer.W_hid_to_hid, layer.b))

    def step(x, h):
        return [np.tanh(x @ W + h @ U + b)]
    return step, [layer.hid_init.get_value()]


def lstm_reference(layer):
    v = {p.name: p.get_value() for p in layer.get_params()}

    def gate(name, x, h):
        return x @ v[f"W_in_to_{name}"] + h @ v[f"W_hid_to_{name}"] + v[f"b_{name}"]

    def step(x, c, h):
        i, f = gate("ingate", x, h), gate("forgetgate", x, h)
        if layer.peepholes:
            i = i + v["W_cell_to_ingate"] * c
            f = f + v["W_cell_to_forgetgate"] * c
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(gate("cell", x, h))
        o = gate("outgate", x, h)
        if layer.peepholes:
            o = o + v["W_cell_to_outgate"] * c_new
        return [c_new, sigmoid(o) * np.tanh(c_new)]
    return step, [v.get("cell_init"), v.get("hid_init")]


def gru_reference(layer):
    v = {p.name: p.get_value() for p in layer.get_params()}

    def step(x, h):
        r = sigmoid(x @ v["W_in_to_resetgate"] + h @ v["W_hid_to_resetgate"] + v["b_resetgate"])
        u = sigmoid(x @ v["W_in_to_updategate"] + h @ v["W_hid_to_updategate"]
                    + v["b_updategate"])
        c = np.tanh(x @ v["W_in_to_hidden_update"] + r * (h @ v["W_hid_to_hidden_update"])
                    + v["b_hidden_update"])
        return [(1 - u) * h + u * c]
    return step, [v.get("hid_init")]


# --- Building layers ---------------------------------------------------------------------------

def gate(W_cell=True, nonlinearity=nonlinearities.sigmoid):
    # Larger weights and nonzero biases than the defaults, so every term matters.
    return Gate(W_in=init.Normal(0.5), W_hid=init.Normal(0.5),
                W_cell=init.Normal(0.5) if W_cell else None, b=init.Normal(0.5),
                nonlinearity=nonlinearity)


def build(kind, l_in, **kwargs):
    if kind == "rnn":
        return RecurrentLayer(l_in, UNITS, W_in_to_hid=init.Normal(0.5),
                              W_hid_to_hid=init.Normal(0.5), b=init.Normal(0.5),
                              nonlinearity=nonlinearities.tanh, hid_init=init.Normal(0.5),
                              **kwargs)
    if kind in ("lstm", "lstm_no_peepholes"):
        peepholes = kind == "lstm"
        return LSTMLayer(l_in, UNITS, ingate=gate(peepholes), forgetgate=gate(peepholes),
                         cell=gate(False, nonlinearities.tanh), outgate=gate(peepholes),
                         peepholes=peepholes, hid_init=init.Normal(0.5),
                         cell_init=init.Normal(0.5), **kwargs)
    if kind == "gru":
        return GRULayer(l_in, UNITS, resetgate=gate(False), updategate=gate(False),
                        hidden_update=gate(False, nonlinearities.tanh),
                        hid_init=init.Normal(0.5), **kwargs)
    raise ValueError(kind)


REFERENCES = {"rnn": rnn_reference, "lstm": lstm_reference, "lstm_no_peepholes": lstm_reference,
              "gru": gru_reference}

CONFIGS = {
    "full": {},
    "mask": {"mask": True},
    "final": {"only_return_final": True},
    "backwards": {"backwards": True},
    "backwards_mask_final": {"backwards": True, "mask": True, "only_return_final": True},
    "no_precompute_mask": {"precompute_input": False, "mask": True},
    "unroll_backwards": {"unroll_scan": True, "backwards": True},
}


def random_mask(rng, batch, steps):
    """Sequences of different lengths (at least 1), padded at the end."""
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[0] = steps
    return (np.arange(steps)[None, :] < lengths[:, None]).astype(FLOATX)


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kind", list(REFERENCES))
def test_matches_numpy_reference(kind, config):
    options = dict(CONFIGS[config])
    use_mask = options.pop("mask", False)
    rng = np.random.default_rng(zlib.crc32(f"{kind}/{config}".encode()))
    steps_shape = STEPS if options.get("unroll_scan") else None
    l_in = InputLayer((None, steps_shape, FEATURES))
    l_mask = InputLayer((None, steps_shape)) if use_mask else None
    layer = build(kind, l_in, mask_input=l_mask, **options)

    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(FLOATX)
    mask = random_mask(rng, BATCH, STEPS) if use_mask else None
    inputs = [l_in.input_var] + ([l_mask.input_var] if use_mask else [])
    f = pytensor.function(inputs, get_output(layer))
    got = f(x, mask) if use_mask else f(x)

    step, states = REFERENCES[kind](layer)
    outputs, final = reference_run(step, x, states, mask, options.get("backwards", False))
    expected = final if options.get("only_return_final") else outputs
    assert got.shape == expected.shape == get_output_shape(
        layer, {l_in: x.shape, **({l_mask: mask.shape} if use_mask else {})})
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)
    if use_mask and not options.get("only_return_final"):
        # Padding keeps the state: after a sequence ends, its output stays constant.
        lengths = mask.sum(axis=1).astype(int)
        for row, n in enumerate(lengths):
            if not options.get("backwards"):
                np.testing.assert_allclose(got[row, n:], np.broadcast_to(got[row, n - 1],
                                                                         got[row, n:].shape))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_initial_states_from_layers_and_trailing_axes(kind):
    """hid_init / cell_init given as layers, and an input with two feature axes (flattened)."""
    rng = np.random.default_rng(1)
    l_in = InputLayer((None, None, 2, 2))
    l_hid = InputLayer((None, UNITS))
    l_cell = InputLayer((None, UNITS))
    if kind == "lstm":
        layer = LSTMLayer(l_in, UNITS, hid_init=l_hid, cell_init=l_cell)
    else:
        layer = GRULayer(l_in, UNITS, hid_init=l_hid)
    assert layer.input_layers[layer.hid_init_incoming_index] is l_hid
    assert all(p.name != "hid_init" for p in layer.get_params())
    x = rng.normal(size=(BATCH, STEPS, 2, 2)).astype(FLOATX)
    h0 = rng.normal(size=(BATCH, UNITS)).astype(FLOATX)
    c0 = rng.normal(size=(BATCH, UNITS)).astype(FLOATX)
    inputs = [l_in.input_var, l_hid.input_var] + ([l_cell.input_var] if kind == "lstm" else [])
    f = pytensor.function(inputs, get_output(layer))
    got = f(x, h0, c0) if kind == "lstm" else f(x, h0)

    # The reference reads the initial states from the layer's params; give it these instead.
    if kind == "lstm":
        step, _ = lstm_reference(layer)
        states = [c0, h0]
    else:
        step, _ = gru_reference(layer)
        states = [h0]
    expected, _ = reference_run(step, x.reshape(BATCH, STEPS, 4), states)
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)


def test_custom_recurrent_layer_matches_recurrent_layer():
    l_in = InputLayer((None, None, FEATURES))
    l_rnn = RecurrentLayer(l_in, UNITS, W_in_to_hid=init.Normal(0.5),
                           W_hid_to_hid=init.Normal(0.5), b=init.Normal(0.5),
                           nonlinearity=nonlinearities.tanh)
    in_to_hid = DenseLayer(InputLayer((None, FEATURES)), UNITS, W=l_rnn.W_in_to_hid, b=l_rnn.b,
                           nonlinearity=None)
    hid_to_hid = DenseLayer(InputLayer((None, UNITS)), UNITS, W=l_rnn.W_hid_to_hid, b=None,
                            nonlinearity=None)
    l_custom = CustomRecurrentLayer(l_in, in_to_hid, hid_to_hid,
                                    nonlinearity=nonlinearities.tanh, precompute_input=False)
    assert set(l_custom.get_params(trainable=True)) == set(l_rnn.get_params(trainable=True))
    x = np.random.default_rng(2).normal(size=(BATCH, STEPS, FEATURES)).astype(FLOATX)
    f = pytensor.function([l_in.input_var], get_output([l_rnn, l_custom]))
    a, b = f(x)
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)
    with pytest.raises(ValueError, match="same shape"):
        CustomRecurrentLayer(l_in, in_to_hid, DenseLayer(InputLayer((None, 3)), 3))


# --- Shapes, parameters, options ---------------------------------------------------------------

@pytest.mark.parametrize("cls", [RecurrentLayer, LSTMLayer, GRULayer])
def test_output_shapes(cls):
    l_in = InputLayer((None, None, 3, 2))
    assert cls(l_in, 7).output_shape == (None, None, 7)
    assert cls(l_in, 7, only_return_final=True).output_shape == (None, 7)
    assert cls(InputLayer((4, 9, 3)), 7).output_shape == (4, 9, 7)
    layer = cls(l_in, 7)
    assert get_output_shape(layer, {l_in: (2, 5, 3, 2)}) == (2, 5, 7)
    assert cls((None, 9, 3), 7, mask_input=InputLayer((None, 9))).output_shape == (None, 9, 7)


LSTM_NAMES = ["W_in_to_ingate", "W_hid_to_ingate", "b_ingate",
              "W_in_to_forgetgate", "W_hid_to_forgetgate", "b_forgetgate",
              "W_in_to_cell", "W_hid_to_cell", "b_cell",
              "W_in_to_outgate", "W_hid_to_outgate", "b_outgate"]
PEEPHOLE_NAMES = ["W_cell_to_ingate", "W_cell_to_forgetgate", "W_cell_to_outgate"]
GRU_NAMES = ["W_in_to_resetgate", "W_hid_to_resetgate", "b_resetgate",
             "W_in_to_updategate", "W_hid_to_updategate", "b_updategate",
             "W_in_to_hidden_update", "W_hid_to_hidden_update", "b_hidden_update"]


def names(params):
    return [p.name for p in params]


def test_parameter_names_and_tags():
    l_in = InputLayer((None, None, 3))
    lstm = LSTMLayer(l_in, 4)
    assert names(lstm.get_params()) == LSTM_NAMES + PEEPHOLE_NAMES + ["cell_init", "hid_init"]
    assert names(lstm.get_params(trainable=True)) == LSTM_NAMES + PEEPHOLE_NAMES
    assert names(lstm.get_params(regularizable=True)) == [
        n for n in LSTM_NAMES + PEEPHOLE_NAMES if not n.startswith("b_")]
    assert lstm.W_cell_to_ingate.get_value().shape == (4,)  # diagonal peepholes
    assert lstm.W_in_to_cell.get_value().shape == (3, 4)
    assert lstm.hid_init.get_value().shape == (1, 4)

    learned = LSTMLayer(l_in, 4, peepholes=False, learn_init=True, name="lstm")
    assert names(learned.get_params(trainable=True)) == [
        "lstm." + n for n in LSTM_NAMES + ["cell_init", "hid_init"]]
    assert "lstm.hid_init" not in names(learned.get_params(regularizable=True))
    assert not hasattr(learned, "W_cell_to_ingate")

    gru = GRULayer(l_in, 4)
    assert names(gru.get_params()) == GRU_NAMES + ["hid_init"]
    assert names(gru.get_params(trainable=True)) == GRU_NAMES
    assert names(GRULayer(l_in, 4, learn_init=True).get_params(trainable=True)) == (
        GRU_NAMES + ["hid_init"])

    rnn = RecurrentLayer(l_in, 4, learn_init=True)
    assert names(rnn.get_params(trainable=True)) == [
        "hid_init", "input_to_hidden.W", "input_to_hidden.b", "hidden_to_hidden.W"]
    assert names(RecurrentLayer(l_in, 4).get_params(trainable=True)) == [
        "input_to_hidden.W", "input_to_hidden.b", "hidden_to_hidden.W"]
    assert rnn.W_in_to_hid.get_value().shape == (3, 4)
    # The network-level helper finds the recurrent layers' parameters too.
    l_final = LSTMLayer(l_in, 4, only_return_final=True)
    assert len(get_all_params(DenseLayer(l_final, 2), trainable=True)) == 15 + 2


def test_bad_arguments_fail_early():
    l_in = InputLayer((None, None, 3))
    with pytest.raises(ValueError, match="num_units"):
        LSTMLayer(l_in, 0)
    with pytest.raises(ValueError, match="num_units"):
        RecurrentLayer(l_in, 2.5)
    with pytest.raises(ValueError, match="batch, time, features"):
        GRULayer(InputLayer((None, 3)), 4)
    with pytest.raises(ValueError, match="ingate"):
        LSTMLayer(l_in, 4, ingate=Gate(W_cell=None))
    with pytest.raises(ValueError, match="unroll_scan"):
        LSTMLayer(l_in, 4, unroll_scan=True)
    with pytest.raises(ValueError, match="gradient_steps"):
        GRULayer(l_in, 4, gradient_steps=0)
    with pytest.raises(ValueError, match="grad_clipping"):
        GRULayer(l_in, 4, grad_clipping=-1)
    with pytest.raises(TypeError, match="mask_input"):
        LSTMLayer(l_in, 4, mask_input=np.ones((2, 3)))
    with pytest.raises(ValueError, match="mask_input"):
        LSTMLayer(l_in, 4, mask_input=InputLayer((None, None, 1)))
    with pytest.raises(ValueError, match="hid_init"):
        GRULayer(l_in, 4, hid_init=InputLayer((None, 5)))
    with pytest.raises(TypeError, match="resetgate"):
        GRULayer(l_in, 4, resetgate="sigmoid")
    with pytest.raises(ValueError, match="feature sizes"):
        LSTMLayer(InputLayer((None, None, None)), 4)


# --- Gradients ---------------------------------------------------------------------------------

def lstm_loss(l_in=None, l_mask=None, **kwargs):
    rng = np.random.default_rng(3)
    l_in = InputLayer((None, None, 3)) if l_in is None else l_in
    l_mask = InputLayer((None, None)) if l_mask is None else l_mask
    layer = LSTMLayer(l_in, 3, ingate=gate(), forgetgate=gate(), outgate=gate(),
                      cell=gate(False, nonlinearities.tanh), mask_input=l_mask, **kwargs)
    x = rng.normal(size=(2, 5, 3)).astype(FLOATX)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=FLOATX)
    target = rng.normal(size=(2, 5, 3)).astype(FLOATX)
    loss = pt.sum((get_output(layer) - target) ** 2)
    return layer, loss, {l_in.input_var: x, l_mask.input_var: mask}, (l_in, l_mask)


@pytest.mark.skipif(FLOATX != "float64", reason="finite differences need float64")
def test_lstm_gradient_matches_finite_differences():
    layer, loss, givens, _ = lstm_loss()
    W = layer.W_hid_to_forgetgate  # reaches the loss only through the recurrence
    f = pytensor.function([], [loss, pytensor.grad(loss, W)], givens=givens)
    _, grad = f()
    value = W.get_value()
    numeric = np.zeros_like(value)
    eps = 1e-6
    for index in np.ndindex(value.shape):
        for sign in (1, -1):
            shifted = value.copy()
            shifted[index] += sign * eps
            W.set_value(shifted)
            numeric[index] += sign * f()[0] / (2 * eps)
    W.set_value(value)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
    assert np.abs(grad).max() > 1e-3


def test_grad_clipping_keeps_forward_pass_and_bounds_gradients():
    plain, loss_plain, givens, (l_in, l_mask) = lstm_loss()
    clipped, loss_clipped, _, _ = lstm_loss(l_in, l_mask, grad_clipping=1e-3)
    set_all_param_values(clipped, [p.get_value() for p in plain.get_params()])
    W_plain, W_clipped = plain.W_in_to_cell, clipped.W_in_to_cell
    f = pytensor.function([], [loss_plain, loss_clipped, pytensor.grad(loss_plain, W_plain),
                               pytensor.grad(loss_clipped, W_clipped)], givens=givens)
    a, b, grad_a, grad_b = f()
    assert a == pytest.approx(b, rel=1e-12)
    assert not np.allclose(grad_a, grad_b)
    assert np.abs(grad_b).max() < np.abs(grad_a).max()


# --- Learning ----------------------------------------------------------------------------------

def test_lstm_learns_to_remember_the_first_bit():
    """Output, after a sequence of 5-8 random bits, the first bit."""
    from ntm.lasagne import objectives, updates
    from ntm.lasagne.random import set_rng

    set_rng(np.random.RandomState(0))
    rng = np.random.default_rng(0)

    def batch(size):
        x = rng.integers(0, 2, size=(size, 8, 1)).astype(FLOATX)
        mask = random_mask_between(size, 5, 8)
        x *= mask[:, :, None]
        return x, mask, x[:, 0, 0]

    def random_mask_between(size, shortest, longest):
        lengths = rng.integers(shortest, longest + 1, size=size)
        return (np.arange(8)[None, :] < lengths[:, None]).astype(FLOATX)

    l_in = InputLayer((None, None, 1))
    l_mask = InputLayer((None, None))
    l_lstm = LSTMLayer(l_in, 16, mask_input=l_mask, only_return_final=True, grad_clipping=10)
    l_out = DenseLayer(l_lstm, 1, nonlinearity=nonlinearities.sigmoid)
    prediction = get_output(l_out)[:, 0]
    target = pt.vector("target", dtype=FLOATX)
    loss = objectives.binary_crossentropy(prediction, target).mean()
    params = get_all_params(l_out, trainable=True)
    train = pytensor.function([l_in.input_var, l_mask.input_var, target], loss,
                              updates=updates.adam(loss, params, learning_rate=0.03))
    predict = pytensor.function([l_in.input_var, l_mask.input_var], prediction)

    start = time.perf_counter()
    for _ in range(300):
        train(*batch(32))
    elapsed = time.perf_counter() - start
    x, mask, y = batch(500)
    accuracy = np.mean((predict(x, mask) > 0.5) == (y > 0.5))
    assert accuracy > 0.9, f"accuracy {accuracy:.3f} after {elapsed:.1f} s of training"


@pytest.mark.parametrize("cls", ["RecurrentLayer", "LSTMLayer", "GRULayer"])
def test_one_unit_recurrent_layers_have_gradients(cls):
    import ntm.lasagne.layers as L
    l_in = L.InputLayer((None, 4, 3))
    layer = getattr(L, cls)(l_in, 1)
    params = L.get_all_params(layer, trainable=True)
    grads = pytensor.grad(L.get_output(layer).sum(), params)
    x = np.random.RandomState(0).randn(2, 4, 3)
    values = pytensor.function([l_in.input_var], grads)(x)
    assert [v.shape for v in values] == [p.get_value().shape for p in params]
    assert any(np.abs(v).sum() > 0 for v in values)


def test_custom_recurrent_checks_the_batch_size_of_input_to_hidden():
    from ntm.lasagne.layers import Conv2DLayer
    l_in = InputLayer((2, 3, 4, 5, 6))  # batch 2, 3 steps
    hid_to_hid = Conv2DLayer(InputLayer((2, 7, 5, 6)), 7, 3, pad="same")

    def in_to_hid(batch):
        return Conv2DLayer(InputLayer((batch, 4, 5, 6)), 7, 3, pad="same")

    # precompute_input: all steps go through input_to_hidden at once, batch * time = 6
    CustomRecurrentLayer(l_in, in_to_hid(6), hid_to_hid, precompute_input=True)
    CustomRecurrentLayer(l_in, in_to_hid(None), hid_to_hid, precompute_input=True)
    with pytest.raises(ValueError, match="batch \\* time = 6"):
        CustomRecurrentLayer(l_in, in_to_hid(2), hid_to_hid, precompute_input=True)
    # step by step: the batch of input_to_hidden is that of hidden_to_hidden
    CustomRecurrentLayer(l_in, in_to_hid(2), hid_to_hid, precompute_input=False)
    with pytest.raises(ValueError, match="same batch size"):
        CustomRecurrentLayer(l_in, in_to_hid(3), hid_to_hid, precompute_input=False)
