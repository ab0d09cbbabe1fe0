"""A small classifier built, trained and restored with the Lasagne-style API, end to end."""
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm import lasagne

CENTRES = np.array([[0.0, 3.0], [-2.6, -1.5], [2.6, -1.5]])


def blobs(n_per_class, rng):
    """Three Gaussian blobs in the plane, labelled 0, 1, 2, shuffled."""
    x = np.concatenate([c + 0.6 * rng.randn(n_per_class, 2) for c in CENTRES])
    y = np.repeat(np.arange(3), n_per_class).astype("int32")
    order = rng.permutation(len(y))
    return lasagne.utils.floatX(x[order]), y[order]


def build_mlp():
    l_in = lasagne.layers.InputLayer((None, 2), name="in")
    l_hid = lasagne.layers.DenseLayer(l_in, 16, nonlinearity=lasagne.nonlinearities.tanh,
                                      name="hidden")
    l_out = lasagne.layers.DenseLayer(l_hid, 3, nonlinearity=lasagne.nonlinearities.softmax,
                                      name="out")
    return l_in, l_out


@pytest.fixture
def seeded():
    old = lasagne.random.get_rng()
    lasagne.random.set_rng(np.random.RandomState(0))
    yield np.random.RandomState(1)
    lasagne.random.set_rng(old)


def test_mlp_learns_three_blobs(seeded):
    rng = seeded
    x_train, y_train = blobs(100, rng)
    x_test, y_test = blobs(100, rng)
    l_in, l_out = build_mlp()
    assert lasagne.layers.get_output_shape(l_out) == (None, 3)
    assert lasagne.layers.count_params(l_out) == 2 * 16 + 16 + 16 * 3 + 3

    targets = pt.ivector("targets")
    prediction = lasagne.layers.get_output(l_out)
    loss = lasagne.objectives.categorical_crossentropy(prediction, targets).mean()
    params = lasagne.layers.get_all_params(l_out, trainable=True)
    updates = lasagne.updates.adam(loss, params, learning_rate=0.05)
    train = pytensor.function([l_in.input_var, targets], loss, updates=updates)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # deterministic=True must not warn
        test_prediction = lasagne.layers.get_output(l_out, deterministic=True)
    predict = pytensor.function([l_in.input_var], test_prediction.argmax(axis=-1))

    initial_accuracy = (predict(x_test) == y_test).mean()
    losses = [float(train(x_train, y_train)) for _ in range(150)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.2 * losses[0]
    accuracy = (predict(x_test) == y_test).mean()
    assert accuracy > 0.95, (initial_accuracy, accuracy)

    # the trained parameters restore into a freshly built network
    values = lasagne.layers.get_all_param_values(l_out)
    l_in2, l_out2 = build_mlp()
    lasagne.layers.set_all_param_values(l_out2, values)
    predict2 = pytensor.function([l_in2.input_var], lasagne.layers.get_output(l_out2))
    probabilities = pytensor.function([l_in.input_var], test_prediction)(x_test)
    np.testing.assert_allclose(predict2(x_test), probabilities, rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_single_output_unit_trains(seeded):
    # a (1,)-shaped bias and (n, 1) weights go through the updates and broadcast
    rng = seeded
    x, y = blobs(50, rng)
    x, y = x[y < 2], lasagne.utils.floatX((y[y < 2] == 1)[:, None])
    l_in = lasagne.layers.InputLayer((None, 2))
    l_out = lasagne.layers.DenseLayer(l_in, 1, nonlinearity=lasagne.nonlinearities.sigmoid)
    targets = pt.matrix("targets")
    prediction = lasagne.layers.get_output(l_out)
    loss = lasagne.objectives.binary_crossentropy(prediction, targets).mean()
    updates = lasagne.updates.adam(loss, lasagne.layers.get_all_params(l_out), 0.1)
    train = pytensor.function([l_in.input_var, targets], loss, updates=updates)
    for _ in range(60):
        train(x, y)
    accuracy = ((pytensor.function([l_in.input_var], prediction)(x) > 0.5) == y).mean()
    assert accuracy > 0.95
