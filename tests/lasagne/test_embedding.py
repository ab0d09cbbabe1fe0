"""EmbeddingLayer: rows of W picked by the indices; gradient only to the rows used."""
import numpy as np
import pytensor
import pytensor.tensor as pt

from ntm.lasagne.layers import EmbeddingLayer, InputLayer, get_output


def test_embedding_values_shape_and_gradient():
    l_in = InputLayer((None, 4), input_var=pt.imatrix())
    layer = EmbeddingLayer(l_in, input_size=10, output_size=3)
    assert layer.output_shape == (None, 4, 3)
    assert layer.W.get_value().shape == (10, 3) and layer.get_params() == [layer.W]
    x = np.array([[0, 3, 3, 9], [1, 2, 0, 5]], dtype="int32")
    out = get_output(layer).eval({l_in.input_var: x})
    np.testing.assert_array_equal(out, layer.W.get_value()[x])
    grad = pytensor.grad(get_output(layer).sum(), layer.W).eval({l_in.input_var: x})
    counts = np.bincount(x.ravel(), minlength=10)
    np.testing.assert_array_equal(grad, np.repeat(counts[:, None], 3, axis=1))
