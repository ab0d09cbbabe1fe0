"""The new layers compose with NTMLayer: a convolutional encoder in front of an NTM, and an
EmbeddingLayer feeding one; shapes, gradients reaching the front layers, and a loss that goes
down in a few steps. Both compile a whole NTM with its gradient, hence slow."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.controllers import DenseController
from ntm.heads import ReadHead, WriteHead
from ntm.lasagne import layers, nonlinearities, objectives, updates
from ntm.lasagne.random import set_rng
from ntm.layers import NTMLayer
from ntm.memory import Memory

MEMORY = (8, 4)


def ntm_on(l_features):
    controller = DenseController(l_features, MEMORY, 10, num_reads=1)
    heads = [WriteHead(controller, 3, MEMORY), ReadHead(controller, 3, MEMORY)]
    return NTMLayer(l_features, Memory(MEMORY), controller, heads)


def train(l_in, l_out, inputs, targets, steps=15):
    target_var = pt.tensor3()
    prediction = layers.get_output(l_out)
    loss = objectives.binary_crossentropy(prediction, target_var).mean()
    params = layers.get_all_params(l_out, trainable=True)
    step = pytensor.function([l_in.input_var, target_var], loss,
                             updates=updates.adam(loss, params, learning_rate=0.01))
    return [float(step(inputs, targets)) for _ in range(steps)]


@pytest.mark.slow
def test_conv_encoder_in_front_of_an_ntm():
    set_rng(np.random.RandomState(0))
    rng = np.random.RandomState(1)
    batch, time = 3, 4
    # one bright pixel per frame; the target says whether it is in the upper half
    frames = np.zeros((batch, time, 1, 8, 8), dtype=pytensor.config.floatX)
    rows = rng.randint(0, 8, size=(batch, time))
    cols = rng.randint(0, 8, size=(batch, time))
    for b in range(batch):
        for t in range(time):
            frames[b, t, 0, rows[b, t], cols[b, t]] = 1
    targets = (rows < 4).astype(pytensor.config.floatX)[..., None]

    l_in = layers.InputLayer((None, None, 1, 8, 8))
    l_frames = layers.ReshapeLayer(l_in, (-1, 1, 8, 8))
    l_conv = layers.Conv2DLayer(l_frames, 4, 3, pad="same")
    l_pool = layers.MaxPool2DLayer(l_conv, 2)
    l_code = layers.DenseLayer(l_pool, 6)
    l_seq = layers.ReshapeLayer(l_code, (l_in.input_var.shape[0], -1, 6))
    l_ntm = ntm_on(l_seq)
    l_out = layers.DenseLayer(l_ntm, 1, num_leading_axes=2,
                              nonlinearity=nonlinearities.sigmoid)
    assert l_pool.output_shape == (None, 4, 4, 4)
    assert l_seq.output_shape == (None, None, 6)
    assert l_out.output_shape == (None, None, 1)

    out = layers.get_output(l_out)
    grad_conv = pytensor.grad(out.sum(), l_conv.W)
    values, grad_value = pytensor.function([l_in.input_var], [out, grad_conv])(frames)
    assert values.shape == (batch, time, 1)
    assert np.abs(grad_value).sum() > 0
    losses = train(l_in, l_out, frames, targets)
    assert np.isfinite(losses).all() and losses[-1] < 0.9 * losses[0], losses


@pytest.mark.slow
def test_embedding_feeding_an_ntm():
    set_rng(np.random.RandomState(2))
    rng = np.random.RandomState(3)
    batch, time, vocabulary = 4, 5, 7
    tokens = rng.randint(0, vocabulary, size=(batch, time)).astype("int32")
    # the target: whether the token is even
    targets = (tokens % 2 == 0).astype(pytensor.config.floatX)[..., None]

    l_in = layers.InputLayer((None, None), input_var=pt.imatrix("tokens"))
    l_embed = layers.EmbeddingLayer(l_in, vocabulary, 5)
    l_ntm = ntm_on(l_embed)
    l_out = layers.DenseLayer(l_ntm, 1, num_leading_axes=2,
                              nonlinearity=nonlinearities.sigmoid)
    assert l_embed.output_shape == (None, None, 5)
    out = layers.get_output(l_out)
    grad = pytensor.grad(out.sum(), l_embed.W)
    grad_value = pytensor.function([l_in.input_var], grad)(tokens)
    # only the rows of tokens that occur get a gradient
    used = np.zeros(vocabulary, dtype=bool)
    used[np.unique(tokens)] = True
    assert (np.abs(grad_value[used]).sum(axis=1) > 0).all()
    assert (grad_value[~used] == 0).all()
    losses = train(l_in, l_out, tokens, targets)
    assert np.isfinite(losses).all() and losses[-1] < 0.9 * losses[0], losses
