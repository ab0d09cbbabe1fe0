"""Gradients of a tiny NTM against finite differences, and a short copy-task training run.

Compiling the gradient of the NTM's scan is slow, so the whole module shares one compiled
function ``f(x, y) -> [loss, *grads]`` (float64); training applies Adam in NumPy with it.
"""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.controllers import DenseController
from ntm.heads import ReadHead, WriteHead
from ntm.lasagne import nonlinearities, objectives
from ntm.lasagne.layers import DenseLayer, InputLayer, ReshapeLayer, get_all_params, get_output
from ntm.layers import NTMLayer
from ntm.memory import Memory
from utils.generators import CopyTask

N, M, UNITS, SIZE = 8, 4, 16, 3
MIN_LENGTH, MAX_LENGTH = 1, 3


@pytest.fixture(scope="module")
def model():
    old = pytensor.config.floatX
    pytensor.config.floatX = "float64"
    try:
        np.random.seed(0)
        from ntm.lasagne import random as lasagne_random
        old_rng = lasagne_random.get_rng()
        lasagne_random.set_rng(np.random.RandomState(0))
        l_in = InputLayer((None, None, SIZE + 1))
        memory = Memory((N, M))
        ctrl = DenseController(l_in, (N, M), UNITS, 1)
        write = WriteHead(ctrl, 3, (N, M))
        read = ReadHead(ctrl, 3, (N, M))
        l_ntm = NTMLayer(l_in, memory, ctrl, [write, read])
        l_flat = ReshapeLayer(l_ntm, (-1, UNITS))
        l_dense = DenseLayer(l_flat, SIZE, nonlinearity=nonlinearities.sigmoid)
        l_out = ReshapeLayer(l_dense, (l_in.input_var.shape[0], -1, SIZE))
        lasagne_random.set_rng(old_rng)

        target = pt.tensor3("target")
        prediction = get_output(l_out)
        loss = objectives.binary_crossentropy(prediction, target).mean()
        params = get_all_params(l_out, trainable=True)
        grads = pytensor.grad(loss, params)
        f = pytensor.function([l_in.input_var, target], [loss] + grads)
    finally:
        pytensor.config.floatX = old
    return dict(f=f, params=params, memory=memory, ctrl=ctrl, write=write, read=read,
                dense=l_dense)


def copy_task(seed):
    return CopyTask(size=SIZE, min_length=MIN_LENGTH, max_length=MAX_LENGTH, seed=seed,
                    batch_size=8, dtype=np.float64)


def check_gradients(model, x, y, rng):
    # The default memory_init (1e-6 everywhere) is as small as the finite-difference step and
    # the cosine similarity is far from linear at that scale, so the check runs from a random
    # memory_init.
    memory_init = model["memory"].memory_init
    saved = memory_init.get_value()
    memory_init.set_value(0.5 * rng.randn(*saved.shape))
    try:
        _check_gradients(model, x, y, rng)
    finally:
        memory_init.set_value(saved)


def _check_gradients(model, x, y, rng):
    f, params = model["f"], model["params"]
    analytic = f(x, y)[1:]
    by_id = {id(p): g for p, g in zip(params, analytic)}
    checked = [("controller W_in_to_hid", model["ctrl"].W_in_to_hid),
               ("write head W_hid_to_key", model["write"].W_hid_to_key),
               ("write head W_hid_to_add", model["write"].W_hid_to_add),
               ("read head W_hid_to_shift", model["read"].W_hid_to_shift),
               ("memory_init", model["memory"].memory_init),
               ("output W", model["dense"].W)]
    eps = 1e-6
    for label, p in checked:
        grad = by_id[id(p)]
        assert np.isfinite(grad).all(), label
        assert np.abs(grad).max() > 1e-8, f"{label}: zero gradient, the check would be void"
        # the largest entry and two random ones
        flat = [int(np.argmax(np.abs(grad)))] + list(rng.randint(0, grad.size, size=2))
        original = p.get_value()
        try:
            for i in flat:
                index = np.unravel_index(i, grad.shape)
                value = original.copy()
                value[index] += eps
                p.set_value(value)
                plus = f(x, y)[0]
                value[index] -= 2 * eps
                p.set_value(value)
                minus = f(x, y)[0]
                numeric = (plus - minus) / (2 * eps)
                exact = grad[index]
                scale = max(abs(numeric), abs(exact))
                # relative error below 1e-4, up to the rounding noise of the central
                # difference (about 1e-16 * loss / eps = 1e-10)
                assert abs(numeric - exact) <= 1e-4 * scale + 1e-9, (label, index, numeric,
                                                                      exact)
        finally:
            p.set_value(original)


def test_gradients_match_finite_differences(model):
    task = copy_task(seed=1)
    x, y, _ = task.sample_with_mask(length=MAX_LENGTH)
    check_gradients(model, x, y, np.random.RandomState(0))


def test_copy_task_loss_decreases(model):
    f, params = model["f"], model["params"]
    initial = [p.get_value() for p in params]
    task = copy_task(seed=0)
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    m = [np.zeros_like(v) for v in initial]
    v = [np.zeros_like(w) for w in initial]
    losses = []
    steps = 300
    try:
        for t in range(1, steps + 1):
            x, y, _ = task.sample_with_mask()
            loss, *grads = f(x, y)
            assert np.isfinite(loss)
            losses.append(float(loss))
            for i, (p, g) in enumerate(zip(params, grads)):
                m[i] = beta1 * m[i] + (1 - beta1) * g
                v[i] = beta2 * v[i] + (1 - beta2) * g ** 2
                m_hat = m[i] / (1 - beta1 ** t)
                v_hat = v[i] / (1 - beta2 ** t)
                p.set_value(p.get_value() - lr * m_hat / (np.sqrt(v_hat) + eps))
        first, last = np.mean(losses[:20]), np.mean(losses[-20:])
        assert last < 0.6 * first, (first, last)
        # the gradient is still right away from the initialisation
        x, y, _ = task.sample_with_mask(length=MAX_LENGTH)
        check_gradients(model, x, y, np.random.RandomState(1))
    finally:
        for p, value in zip(params, initial):
            p.set_value(value)
