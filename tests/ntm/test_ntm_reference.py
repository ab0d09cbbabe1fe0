"""The NTM layer against an independent NumPy implementation of its step (float64).

Every parameter (including the initial memory, hidden state and head weightings) is
randomised so that no part of the computation is trivial.
"""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.controllers import DenseController, LSTMController
from ntm.heads import ReadHead, WriteHead, shift
from ntm.lasagne.layers import InputLayer, get_output
from ntm.layers import NTMLayer
from ntm.memory import Memory

EPS_COSINE = 1e-6
EPS_SHARPEN = 1e-6
TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(autouse=True)
def float64():
    old = pytensor.config.floatX
    pytensor.config.floatX = "float64"
    try:
        yield
    finally:
        pytensor.config.floatX = old


# --------------------------------------------------------------------------- NumPy reference

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.logaddexp(0.0, x)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def relu(x):
    return np.maximum(x, 0.0)


def values(layer, names):
    return {n: getattr(layer, n).get_value() for n in names}


class RefHead:
    def __init__(self, head, write):
        self.write = write
        comps = ["key", "beta", "gate", "shift", "gamma"] + (["erase", "add"] if write else [])
        self.p = {c: (getattr(head, f"W_hid_to_{c}").get_value(),
                      getattr(head, f"b_hid_to_{c}").get_value()) for c in comps}
        self.w0 = head.weights_init.get_value()
        self.mode = head.shift_mode
        self.S = head.num_shifts

    def _lin(self, c, h):
        W, b = self.p[c]
        return h @ W + b

    def emit(self, h):
        e = dict(key=np.tanh(self._lin("key", h)),
                 beta=softplus(self._lin("beta", h))[:, 0],
                 gate=sigmoid(self._lin("gate", h))[:, 0],
                 shift=softmax(self._lin("shift", h)),
                 gamma=1.0 + softplus(self._lin("gamma", h))[:, 0])
        if self.write:
            e["erase"] = sigmoid(self._lin("erase", h))
            e["add"] = np.tanh(self._lin("add", h))
        return e

    def address(self, e, w_prev, mem):
        B, N, _ = mem.shape
        key = e["key"]
        dots = np.einsum("bm,bnm->bn", key, mem)
        norms = np.linalg.norm(key, axis=-1)[:, None] * np.linalg.norm(mem, axis=-1)
        K = dots / (norms + EPS_COSINE)
        wc = softmax(e["beta"][:, None] * K)
        g = e["gate"][:, None]
        wg = g * wc + (1.0 - g) * w_prev
        s = e["shift"]
        wt = np.zeros_like(wg)
        for i in range(N):
            for k in range(self.S):
                j = i - k + self.S // 2
                if self.mode == "circular":
                    j %= N
                elif not 0 <= j < N:
                    continue
                wt[:, i] += s[:, k] * wg[:, j]
        wt = wt + EPS_SHARPEN
        wt = wt / wt.max(axis=-1, keepdims=True)
        p = wt ** e["gamma"][:, None]
        return p / p.sum(axis=-1, keepdims=True)


class RefDense:
    def __init__(self, c):
        self.v = values(c, ["W_in_to_hid", "b_in_to_hid", "W_reads_to_hid", "b_reads_to_hid",
                            "hid_init"])

    def init(self, B):
        h = np.repeat(self.v["hid_init"], B, axis=0)
        return h, h

    def step(self, x, r, h, c):
        v = self.v
        h = relu(x @ v["W_in_to_hid"] + v["b_in_to_hid"] + r @ v["W_reads_to_hid"]
                 + v["b_reads_to_hid"])
        return h, h


class RefLSTM:
    gates = ("ingate", "forgetgate", "cell", "outgate")

    def __init__(self, c):
        names = ["hid_init", "cell_init"]
        for g in self.gates:
            names += [f"W_in_to_{g}", f"W_reads_to_{g}", f"W_hid_to_{g}", f"b_{g}"]
        self.v = values(c, names)

    def init(self, B):
        return (np.repeat(self.v["hid_init"], B, axis=0),
                np.repeat(self.v["cell_init"], B, axis=0))

    def step(self, x, r, h, c):
        v = self.v
        a = {g: x @ v[f"W_in_to_{g}"] + r @ v[f"W_reads_to_{g}"] + h @ v[f"W_hid_to_{g}"]
             + v[f"b_{g}"] for g in self.gates}
        i, f, o = sigmoid(a["ingate"]), sigmoid(a["forgetgate"]), sigmoid(a["outgate"])
        c = f * c + i * np.tanh(a["cell"])
        return o * np.tanh(c), c


def reference(model, x):
    """Run the NumPy NTM; returns memory, hidden, state, write and read weightings
    with the layout of ``get_details``."""
    l_ntm = model["ntm"]
    B, T, _ = x.shape
    ctrl = (RefLSTM if isinstance(l_ntm.controller, LSTMController) else RefDense)(
        l_ntm.controller)
    writes = [RefHead(h, True) for h in l_ntm.heads if isinstance(h, WriteHead)]
    reads = [RefHead(h, False) for h in l_ntm.heads if isinstance(h, ReadHead)]
    mem = np.broadcast_to(l_ntm.memory.memory_init.get_value(),
                          (B,) + l_ntm.memory.memory_shape).copy()
    h, c = ctrl.init(B)
    ww = [np.tile(hd.w0, (B, 1)) for hd in writes]
    rw = [np.tile(hd.w0, (B, 1)) for hd in reads]
    emitted = [hd.emit(h) for hd in writes]
    out = {k: [] for k in ("memory", "hidden", "state", "write", "read")}
    for t in range(T):
        keep = np.ones_like(mem)
        added = np.zeros_like(mem)
        for w, e in zip(ww, emitted):
            keep *= 1.0 - w[:, :, None] * e["erase"][:, None, :]
            added += w[:, :, None] * e["add"][:, None, :]
        mem = mem * keep + added
        r = np.concatenate([np.einsum("bn,bnm->bm", w, mem) for w in rw], axis=-1) if rw \
            else np.zeros((B, 0))
        h, c = ctrl.step(x[:, t], r, h, c)
        emitted = [hd.emit(h) for hd in writes]
        ww = [hd.address(e, w, mem) for hd, e, w in zip(writes, emitted, ww)]
        rw = [hd.address(hd.emit(h), w, mem) for hd, w in zip(reads, rw)]
        out["memory"].append(mem)
        out["hidden"].append(h)
        out["state"].append(c)
        out["write"].append(np.stack(ww, axis=1))
        out["read"].append(np.stack(rw, axis=1))
    return [np.stack(out[k], axis=1) for k in ("memory", "hidden", "state", "write", "read")]


# --------------------------------------------------------------------------- models

def build(num_reads=1, num_writes=1, num_shifts=3, N=8, M=4, units=12, num_inputs=5,
          controller="dense", shift_mode="circular", batch=None, mask=False, seed=0):
    l_in = InputLayer((batch, None, num_inputs))
    memory = Memory((N, M))
    if controller == "dense":
        ctrl = DenseController(l_in, (N, M), units, num_reads)
    else:
        ctrl = LSTMController(l_in, (N, M), units, num_reads)
    writes = [WriteHead(ctrl, num_shifts, (N, M), shift_mode=shift_mode)
              for _ in range(num_writes)]
    reads = [ReadHead(ctrl, num_shifts, (N, M), shift_mode=shift_mode)
             for _ in range(num_reads)]
    heads = []  # interleave kinds, reads first, so the order of heads matters
    for i in range(max(num_reads, num_writes)):
        heads += reads[i:i + 1] + writes[i:i + 1]
    l_mask = InputLayer((batch, None)) if mask else None
    l_ntm = NTMLayer(l_in, memory, ctrl, heads, mask_input=l_mask)
    rng = np.random.RandomState(seed)
    for p in l_ntm.get_params():
        shape = p.get_value().shape
        if p.name == "weights_init":
            value = rng.dirichlet(np.ones(shape[0]))
        else:
            value = 0.5 * rng.randn(*shape)
        p.set_value(value)
    l_ntm.memory.memory_init.set_value(rng.randn(N, M))
    inputs = [l_in.input_var] + ([l_mask.input_var] if mask else [])
    details = get_output(l_ntm, get_details=True)
    fn = pytensor.function(inputs, details)
    return dict(ntm=l_ntm, fn=fn, num_inputs=num_inputs)


CONFIGS = {
    "1r1w_3shifts": dict(num_reads=1, num_writes=1, num_shifts=3, N=8),
    "2r2w_5shifts": dict(num_reads=2, num_writes=2, num_shifts=5, N=10),
    "zero_pad": dict(num_reads=1, num_writes=2, num_shifts=3, N=8, shift_mode="zero_pad"),
    "lstm": dict(num_reads=2, num_writes=1, num_shifts=3, N=10, controller="lstm"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_numpy_reference(name):
    model = build(seed=1, **CONFIGS[name])
    x = np.random.RandomState(2).randn(3, 5, model["num_inputs"])
    got = model["fn"](x)
    expected = reference(model, x)
    for label, g, e in zip(("memory", "hidden", "state", "write_weights", "read_weights"),
                           got, expected):
        assert g.shape == e.shape, label
        np.testing.assert_allclose(g, e, err_msg=label, **TOL)
    # the test is not trivial: weightings are not one-hot and the memory changes over time
    assert np.abs(np.diff(expected[0], axis=1)).max() > 1e-2
    assert expected[4].max() < 0.999
    # weightings are distributions
    np.testing.assert_allclose(got[3].sum(-1), 1.0, **TOL)
    np.testing.assert_allclose(got[4].sum(-1), 1.0, **TOL)


def test_batch_equivalence_and_variable_batch_size():
    model = build(num_reads=1, num_writes=1, seed=3)
    rng = np.random.RandomState(4)
    x = rng.randn(16, 5, model["num_inputs"])
    batched = model["fn"](x)
    for b in range(16):
        single = model["fn"](x[b:b + 1])
        for g, s in zip(batched, single):
            np.testing.assert_allclose(g[b:b + 1], s, **TOL)
    # the same compiled function, other batch sizes and lengths
    for B, T in [(1, 2), (3, 7)]:
        out = model["fn"](rng.randn(B, T, model["num_inputs"]))
        assert out[0].shape[:2] == (B, T)
        assert out[1].shape[:2] == (B, T)


def test_mask_equals_truncated_runs_and_holds_state():
    model = build(num_reads=1, num_writes=1, seed=5, mask=True, controller="lstm")
    rng = np.random.RandomState(6)
    x = rng.randn(2, 5, model["num_inputs"])
    lengths = (5, 3)
    mask = np.zeros((2, 5))
    for b, n in enumerate(lengths):
        mask[b, :n] = 1.0
    batched = model["fn"](x, mask)
    for b, n in enumerate(lengths):
        alone = model["fn"](x[b:b + 1, :n], np.ones((1, n)))
        for g, a in zip(batched, alone):
            np.testing.assert_allclose(g[b:b + 1, :n], a, **TOL)
            # after the mask ends everything is held at the last valid step's value
            for t in range(n, 5):
                np.testing.assert_allclose(g[b, t], a[0, n - 1], **TOL)
    # masked output also matches the NumPy reference on the valid steps
    expected = reference(model, x[1:2, :3])
    for g, e in zip(batched, expected):
        np.testing.assert_allclose(g[1:2, :3], e, **TOL)


@pytest.mark.parametrize("mode", ["circular", "zero_pad"])
def test_shift_convention(mode):
    N = 5
    w = pt.tensor3("w")
    s = pt.tensor3("s", shape=(None, None, 3))  # the number of shifts known statically
    f = pytensor.function([w, s], shift(w, s, N, mode=mode, num_shifts=3))
    eye = np.eye(N)

    def run(position, shift_weights):
        return f(eye[position][None, None], np.array(shift_weights, dtype=float)[None, None])[0, 0]

    # s = [0, 0, 1]: one place forward
    for i in range(N - 1):
        np.testing.assert_allclose(run(i, [0, 0, 1]), eye[i + 1])
    last_forward = run(N - 1, [0, 0, 1])
    # s = [1, 0, 0]: one place backward
    for i in range(1, N):
        np.testing.assert_allclose(run(i, [1, 0, 0]), eye[i - 1])
    first_backward = run(0, [1, 0, 0])
    # s = [0, 1, 0]: no move
    for i in range(N):
        np.testing.assert_allclose(run(i, [0, 1, 0]), eye[i])
    if mode == "circular":
        np.testing.assert_allclose(last_forward, eye[0])
        np.testing.assert_allclose(first_backward, eye[N - 1])
    else:
        np.testing.assert_allclose(last_forward, np.zeros(N))
        np.testing.assert_allclose(first_backward, np.zeros(N))
    # a spread shift mixes neighbours
    np.testing.assert_allclose(run(2, [0.2, 0.5, 0.3]), [0, 0.2, 0.5, 0.3, 0])


@pytest.mark.parametrize("mode", ["circular", "zero_pad"])
@pytest.mark.parametrize("num_shifts, N", [(1, 4), (3, 3), (5, 7), (7, 7), (5, 12)])
def test_shift_matches_numpy_and_its_gradient_is_right(mode, num_shifts, N):
    rng = np.random.RandomState(num_shifts * 100 + N)
    w = pt.tensor3("w")
    s = pt.tensor3("s", shape=(None, None, num_shifts))
    out = shift(w, s, N, mode=mode)
    f = pytensor.function([w, s], out)
    weights, shifts = rng.rand(2, 3, N), rng.rand(2, 3, num_shifts)
    half = num_shifts // 2
    expected = np.zeros_like(weights)
    for i in range(N):
        for k in range(num_shifts):
            source = i - k + half
            if mode == "circular":
                expected[..., i] += shifts[..., k] * weights[..., source % N]
            elif 0 <= source < N:
                expected[..., i] += shifts[..., k] * weights[..., source]
    np.testing.assert_allclose(f(weights, shifts), expected, rtol=1e-12)
    # The gradient of a random projection, against finite differences.
    projection = rng.randn(2, 3, N)
    pytensor.gradient.verify_grad(
        lambda a, b: (shift(a, b, N, mode=mode, num_shifts=num_shifts) * projection).sum(),
        [weights, shifts], rng=rng)
