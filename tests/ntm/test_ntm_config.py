"""Construction-time checks of the NTM, parameter collection and output shapes."""
import numpy as np
import pytensor
import pytest

from ntm.controllers import DenseController, LSTMController
from ntm.heads import ReadHead, WriteHead
from ntm.lasagne import nonlinearities
from ntm.lasagne.layers import (DenseLayer, InputLayer, ReshapeLayer, get_all_params,
                                get_output, get_output_shape)
from ntm.layers import NTMLayer
from ntm.memory import Memory

N, M = 8, 4


def parts(num_reads=1, memory_shape=(N, M), controller_shape=(N, M), head_shape=(N, M)):
    l_in = InputLayer((None, None, 3))
    memory = Memory(memory_shape)
    ctrl = DenseController(l_in, controller_shape, 10, num_reads)
    heads = [WriteHead(ctrl, 3, head_shape), ReadHead(ctrl, 3, head_shape)]
    return l_in, memory, ctrl, heads


# --------------------------------------------------------------------------- bad configurations

def test_memory_shape_of_controller_must_match():
    l_in, memory, ctrl, heads = parts(controller_shape=(N, M + 1), head_shape=(N, M + 1))
    with pytest.raises(ValueError, match=r"controller has memory_shape \(8, 5\).*\(8, 4\)"):
        NTMLayer(l_in, memory, ctrl, heads)


def test_memory_shape_of_heads_must_match():
    l_in, memory, ctrl, _ = parts()
    heads = [WriteHead(ctrl, 3, (N + 2, M)), ReadHead(ctrl, 3, (N, M))]
    with pytest.raises(ValueError, match=r"head 0 \(WriteHead\) has memory_shape \(10, 4\)"):
        NTMLayer(l_in, memory, ctrl, heads)
    heads = [WriteHead(ctrl, 3, (N, M)), ReadHead(ctrl, 3, (N, M + 1))]
    with pytest.raises(ValueError, match=r"head 1 \(ReadHead\) has memory_shape"):
        NTMLayer(l_in, memory, ctrl, heads)


def test_memory_shape_of_memory_must_match():
    l_in, _, ctrl, heads = parts()
    with pytest.raises(ValueError, match="memory has"):
        NTMLayer(l_in, Memory((N, M + 3)), ctrl, heads)


@pytest.mark.parametrize("bad", [(8,), (8, 0), (8, 4, 2), (8.5, 4), "84"])
def test_invalid_memory_shape(bad):
    with pytest.raises(ValueError, match="memory_shape must be a pair"):
        Memory(bad)


def test_num_reads_must_equal_read_heads():
    l_in, memory, ctrl, heads = parts(num_reads=2)
    with pytest.raises(ValueError, match=r"num_reads=2 but there are 1 read heads"):
        NTMLayer(l_in, memory, ctrl, heads)
    l_in, memory, ctrl, heads = parts(num_reads=1)
    with pytest.raises(ValueError, match=r"num_reads=1 but there are 0 read heads"):
        NTMLayer(l_in, memory, ctrl, heads[:1])


@pytest.mark.parametrize("num_shifts", [0, 2, 4, -1])
@pytest.mark.parametrize("kind", [ReadHead, WriteHead])
def test_num_shifts_must_be_positive_odd(kind, num_shifts):
    _, _, ctrl, _ = parts()
    with pytest.raises(ValueError, match="num_shifts must be a positive odd int"):
        kind(ctrl, num_shifts, (N, M))


def test_num_shifts_cannot_exceed_locations():
    _, _, ctrl, _ = parts()
    with pytest.raises(ValueError, match="exceeds the number of memory locations"):
        ReadHead(ctrl, 9, (N, M))


def test_bad_shift_mode():
    _, _, ctrl, _ = parts()
    with pytest.raises(ValueError, match="shift_mode must be one of"):
        WriteHead(ctrl, 3, (N, M), shift_mode="reflect")


def test_no_heads():
    l_in, memory, ctrl, _ = parts(num_reads=0)
    with pytest.raises(ValueError, match="heads is empty"):
        NTMLayer(l_in, memory, ctrl, [])


def test_head_on_another_controller():
    l_in, memory, ctrl, heads = parts()
    other = DenseController(l_in, (N, M), 10, 1)
    with pytest.raises(ValueError, match="not built on this controller"):
        NTMLayer(l_in, memory, ctrl, [heads[0], ReadHead(other, 3, (N, M))])


@pytest.mark.parametrize("controller", [DenseController, LSTMController])
def test_controller_rejects_2d_input(controller):
    with pytest.raises(ValueError, match=r"input must have shape \(batch, time, features\)"):
        controller(InputLayer((None, 3)), (N, M), 10, 1)


def test_controller_needs_known_features():
    with pytest.raises(ValueError, match="number of input features must be known"):
        DenseController(InputLayer((None, None, None)), (N, M), 10, 1)


def test_ntm_layer_rejects_2d_input():
    _, memory, ctrl, heads = parts()
    with pytest.raises(ValueError, match=r"NTMLayer: the input must have shape \(batch, time"):
        NTMLayer(InputLayer((None, 3)), memory, ctrl, heads)


def test_ntm_layer_rejects_mismatched_features():
    _, memory, ctrl, heads = parts()
    with pytest.raises(ValueError, match="expects 3 input features, the input has 5"):
        NTMLayer(InputLayer((None, None, 5)), memory, ctrl, heads)


def test_ntm_layer_rejects_bad_mask_rank():
    l_in, memory, ctrl, heads = parts()
    with pytest.raises(ValueError, match="mask_input must have shape"):
        NTMLayer(l_in, memory, ctrl, heads, mask_input=InputLayer((None, None, 1)))


def test_bad_controller_arguments():
    l_in = InputLayer((None, None, 3))
    with pytest.raises(ValueError, match="num_units must be an int >= 1"):
        DenseController(l_in, (N, M), 0, 1)
    with pytest.raises(ValueError, match="num_reads must be an int >= 0"):
        DenseController(l_in, (N, M), 10, -1)


# --------------------------------------------------------------------------- params and shapes

def copy_model(size=3, units=10):
    l_in = InputLayer((None, None, size + 1))
    memory = Memory((N, M))
    ctrl = DenseController(l_in, (N, M), units, 1)
    heads = [WriteHead(ctrl, 3, (N, M)), ReadHead(ctrl, 3, (N, M))]
    l_ntm = NTMLayer(l_in, memory, ctrl, heads)
    l_flat = ReshapeLayer(l_ntm, (-1, units))
    l_dense = DenseLayer(l_flat, size, nonlinearity=nonlinearities.sigmoid)
    l_out = ReshapeLayer(l_dense, (l_in.input_var.shape[0], -1, size))
    return l_in, memory, ctrl, heads, l_ntm, l_dense, l_out


def test_trainable_params_of_copy_model():
    l_in, memory, ctrl, heads, l_ntm, l_dense, l_out = copy_model()
    params = get_all_params(l_out, trainable=True)
    ids = {id(p) for p in params}
    assert len(ids) == len(params)
    assert id(memory.memory_init) in ids
    for p in (ctrl.W_in_to_hid, ctrl.b_in_to_hid, ctrl.W_reads_to_hid, ctrl.b_reads_to_hid,
              l_dense.W, l_dense.b):
        assert id(p) in ids, p.name
    for head in heads:
        for component in head.components:
            assert id(getattr(head, f"W_hid_to_{component}")) in ids
            assert id(getattr(head, f"b_hid_to_{component}")) in ids
        assert id(head.weights_init) not in ids
    assert id(ctrl.hid_init) not in ids
    # but they are parameters of the model
    everything = {id(p) for p in get_all_params(l_out)}
    assert id(ctrl.hid_init) in everything
    assert all(id(h.weights_init) in everything for h in heads)
    names = sorted(p.name for p in params)
    assert names.count("W_hid_to_erase") == 1 and names.count("W_hid_to_key") == 2


def test_learn_init_flags():
    l_in = InputLayer((None, None, 3))
    memory = Memory((N, M), learn_init=False)
    ctrl = LSTMController(l_in, (N, M), 6, 1, learn_init=True)
    heads = [ReadHead(ctrl, 3, (N, M), learn_init=True)]
    l_ntm = NTMLayer(l_in, memory, ctrl, heads)
    ids = {id(p) for p in get_all_params(l_ntm, trainable=True)}
    assert id(memory.memory_init) not in ids
    assert {id(ctrl.hid_init), id(ctrl.cell_init), id(heads[0].weights_init)} <= ids


def test_output_shapes():
    size, units = 3, 10
    l_in, memory, ctrl, heads, l_ntm, l_dense, l_out = copy_model(size, units)
    assert get_output_shape(l_ntm) == (None, None, units)
    final = NTMLayer(l_in, memory, ctrl, heads, only_return_final=True)
    assert get_output_shape(final) == (None, units)
    fn = pytensor.function([l_in.input_var],
                           [get_output(l_out), get_output(l_ntm), get_output(final)])
    for B, T in [(2, 5), (1, 3)]:
        x = np.random.RandomState(0).rand(B, T, size + 1).astype(pytensor.config.floatX)
        out, seq, last = fn(x)
        assert out.shape == (B, T, size)
        assert ((out > 0) & (out < 1)).all()
        assert seq.shape == (B, T, units)
        assert last.shape == (B, units)
        np.testing.assert_allclose(last, seq[:, -1], rtol=1e-5)


def test_detail_shapes():
    l_in = InputLayer((None, None, 3))
    memory = Memory((N, M))
    ctrl = LSTMController(l_in, (N, M), 6, 2)
    heads = [ReadHead(ctrl, 3, (N, M)), WriteHead(ctrl, 3, (N, M)), ReadHead(ctrl, 3, (N, M))]
    l_ntm = NTMLayer(l_in, memory, ctrl, heads)
    fn = pytensor.function([l_in.input_var], get_output(l_ntm, get_details=True))
    x = np.zeros((2, 4, 3), dtype=pytensor.config.floatX)
    shapes = [o.shape for o in fn(x)]
    assert shapes == [(2, 4, N, M), (2, 4, 6), (2, 4, 6), (2, 4, 1, N), (2, 4, 2, N)]
