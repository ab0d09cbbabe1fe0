"""Objectives and metrics against NumPy values."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.lasagne import objectives as O

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.4, 0.35, 0.25]])
CLASSES = np.array([0, 2, 0, 1], dtype="int64")
ONE_HOT = np.eye(3)[CLASSES]


def _eval(expr, inputs, values):
    return pytensor.function(inputs, expr)(*values)


def test_binary_crossentropy():
    p_val = np.array([[0.9, 0.2], [0.6, 0.01]])
    t_val = np.array([[1.0, 0.0], [0.0, 1.0]])
    p, t = pt.matrix("p", dtype="float64"), pt.matrix("t", dtype="float64")
    got = _eval(O.binary_crossentropy(p, t), [p, t], [p_val, t_val])
    expected = -(t_val * np.log(p_val) + (1 - t_val) * np.log(1 - p_val))
    np.testing.assert_allclose(got, expected)


def test_binary_objectives_align_vector_targets_with_a_column():
    p_val = np.array([[0.9], [0.3], [0.6]])
    t_val = np.array([1.0, 1.0, 0.0])
    p = pt.tensor("p", dtype="float64", shape=(None, 1))
    t = pt.vector("t", dtype="float64")
    ce = _eval(O.binary_crossentropy(p, t), [p, t], [p_val, t_val])
    assert ce.shape == (3, 1)
    np.testing.assert_allclose(ce[:, 0], -np.log([0.9, 0.3, 0.4]))
    acc = _eval(O.binary_accuracy(p, t), [p, t], [p_val, t_val])
    np.testing.assert_array_equal(acc[:, 0], [1, 0, 0])


def test_categorical_crossentropy_with_class_indices_and_one_hot():
    p = pt.matrix("p", dtype="float64")
    idx = pt.lvector("idx")
    oh = pt.matrix("oh", dtype="float64")
    expected = -np.log(P[np.arange(4), CLASSES])
    np.testing.assert_allclose(_eval(O.categorical_crossentropy(p, idx), [p, idx],
                                     [P, CLASSES]), expected)
    np.testing.assert_allclose(_eval(O.categorical_crossentropy(p, oh), [p, oh],
                                     [P, ONE_HOT]), expected)


def test_categorical_crossentropy_with_soft_targets():
    soft = np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6], [1, 0, 0], [0, 0, 1]], dtype=float)
    p, t = pt.matrix("p", dtype="float64"), pt.matrix("t", dtype="float64")
    got = _eval(O.categorical_crossentropy(p, t), [p, t], [P, soft])
    np.testing.assert_allclose(got, -(soft * np.log(P)).sum(axis=1))


def test_categorical_crossentropy_rejects_bad_targets():
    with pytest.raises(TypeError, match="targets must have 2 dimensions"):
        O.categorical_crossentropy(pt.matrix("p"), pt.tensor3("t"))
    with pytest.raises(TypeError, match="must be integer class indices"):
        O.categorical_crossentropy(pt.matrix("p"), pt.vector("t"))


def test_squared_error():
    a_val = np.array([1.0, -2.0, 3.0])
    b_val = np.array([0.5, 1.0, 3.0])
    a, b = pt.vector("a", dtype="float64"), pt.vector("b", dtype="float64")
    np.testing.assert_allclose(_eval(O.squared_error(a, b), [a, b], [a_val, b_val]),
                               (a_val - b_val) ** 2)


def test_binary_hinge_loss():
    scores = np.array([2.0, 0.5, -0.3, -2.0])
    t01 = np.array([1.0, 1.0, 1.0, 0.0])
    s, t = pt.vector("s", dtype="float64"), pt.vector("t", dtype="float64")
    got = _eval(O.binary_hinge_loss(s, t), [s, t], [scores, t01])
    np.testing.assert_allclose(got, np.maximum(0, 1 - scores * (2 * t01 - 1)))
    got_pm = _eval(O.binary_hinge_loss(s, t, delta=0.5, binary=False), [s, t],
                   [scores, 2 * t01 - 1])
    np.testing.assert_allclose(got_pm, np.maximum(0, 0.5 - scores * (2 * t01 - 1)))
    probs = np.array([0.9, 0.6, 0.4, 0.2])
    got_p = _eval(O.binary_hinge_loss(s, t, log_odds=False), [s, t], [probs, t01])
    logits = np.log(probs / (1 - probs))
    np.testing.assert_allclose(got_p, np.maximum(0, 1 - logits * (2 * t01 - 1)))


def test_multiclass_hinge_loss():
    p = pt.matrix("p", dtype="float64")
    idx = pt.lvector("idx")
    oh = pt.matrix("oh", dtype="float64")
    correct = P[np.arange(4), CLASSES]
    rest = np.where(ONE_HOT.astype(bool), -np.inf, P).max(axis=1)
    expected = np.maximum(0, rest - correct + 1)
    np.testing.assert_allclose(_eval(O.multiclass_hinge_loss(p, idx), [p, idx],
                                     [P, CLASSES]), expected)
    np.testing.assert_allclose(_eval(O.multiclass_hinge_loss(p, oh, delta=0.1), [p, oh],
                                     [P, ONE_HOT]), np.maximum(0, rest - correct + 0.1))
    with pytest.raises(TypeError, match="multiclass_hinge_loss: targets"):
        O.multiclass_hinge_loss(p, pt.tensor3("t"))


def test_binary_accuracy_threshold():
    p_val = np.array([0.2, 0.5, 0.7, 0.9])
    t_val = np.array([0.0, 1.0, 0.0, 1.0])
    p, t = pt.vector("p", dtype="float64"), pt.vector("t", dtype="float64")
    np.testing.assert_array_equal(_eval(O.binary_accuracy(p, t), [p, t], [p_val, t_val]),
                                  [1, 1, 0, 1])
    np.testing.assert_array_equal(
        _eval(O.binary_accuracy(p, t, threshold=0.8), [p, t], [p_val, t_val]), [1, 0, 1, 1])


def test_categorical_accuracy_top1_and_topk():
    p = pt.matrix("p", dtype="float64")
    idx = pt.lvector("idx")
    oh = pt.matrix("oh", dtype="float64")
    top1 = (P.argmax(axis=1) == CLASSES).astype(int)
    np.testing.assert_array_equal(_eval(O.categorical_accuracy(p, idx), [p, idx],
                                        [P, CLASSES]), top1)
    np.testing.assert_array_equal(_eval(O.categorical_accuracy(p, oh), [p, oh],
                                        [P, ONE_HOT]), top1)
    top2 = np.argsort(P, axis=1)[:, -2:]
    expected = (top2 == CLASSES[:, None]).any(axis=1).astype(int)
    got = _eval(O.categorical_accuracy(p, idx, top_k=2), [p, idx], [P, CLASSES])
    np.testing.assert_array_equal(got, expected)
    assert expected.tolist() == [1, 1, 0, 1]


def test_categorical_accuracy_rejects_bad_arguments():
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        O.categorical_accuracy(pt.matrix("p"), pt.lvector("t"), top_k=0)
    with pytest.raises(TypeError, match="categorical_accuracy: targets"):
        O.categorical_accuracy(pt.matrix("p"), pt.tensor3("t"))


LOSS = np.array([[1.0, 2.0], [3.0, 4.0]])
WEIGHTS = np.array([[1.0, 0.0], [0.5, 1.0]])


@pytest.mark.parametrize("mode, weighted, expected", [
    ("mean", False, LOSS.mean()),
    ("sum", False, LOSS.sum()),
    ("mean", True, (LOSS * WEIGHTS).mean()),
    ("sum", True, (LOSS * WEIGHTS).sum()),
    ("normalized_sum", True, (LOSS * WEIGHTS).sum() / WEIGHTS.sum()),
])
def test_aggregate_modes(mode, weighted, expected):
    loss = pt.matrix("loss", dtype="float64")
    w = pt.matrix("w", dtype="float64")
    if weighted:
        got = _eval(O.aggregate(loss, w, mode=mode), [loss, w], [LOSS, WEIGHTS])
    else:
        got = _eval(O.aggregate(loss, mode=mode), [loss], [LOSS])
    np.testing.assert_allclose(got, expected)


def test_aggregate_default_is_mean_and_errors():
    loss = pt.matrix("loss", dtype="float64")
    np.testing.assert_allclose(_eval(O.aggregate(loss), [loss], [LOSS]), LOSS.mean())
    with pytest.raises(ValueError, match="normalized_sum.*requires weights"):
        O.aggregate(loss, mode="normalized_sum")
    with pytest.raises(ValueError, match="mode must be 'mean', 'sum' or 'normalized_sum'"):
        O.aggregate(loss, mode="median")


def test_huber_loss():
    p = np.array([[0.0, 1.0, -3.0], [2.5, 0.2, 0.9]])
    t = np.array([[0.5, -1.0, 0.0], [0.0, 0.2, 0.0]])
    for delta in (1.0, 2.0):
        d = np.abs(p - t)
        expected = np.where(d <= delta, 0.5 * d ** 2, delta * (d - 0.5 * delta))
        np.testing.assert_allclose(O.huber_loss(pt.as_tensor(p), pt.as_tensor(t), delta).eval(),
                                   expected)


def test_squared_error_aligns_a_vector_target_with_a_column():
    column = pt.matrix(shape=(None, 1))
    vector = pt.vector()
    loss = O.squared_error(column, vector)
    assert loss.ndim == 2
    out = loss.eval({column: np.array([[1.0], [2.0], [4.0]]), vector: np.array([0.0, 1.0, 2.0])})
    np.testing.assert_allclose(out, [[1.0], [1.0], [4.0]])
