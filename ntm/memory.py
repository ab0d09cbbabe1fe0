r"""The NTM's memory: an :math:`N \times M` matrix whose initial state is a layer parameter."""
import pytensor.tensor as pt

from .lasagne.init import Constant
from .lasagne.layers.base import Layer

__all__ = ["Memory"]


def check_memory_shape(memory_shape, who):
    """``memory_shape`` as a tuple ``(N, M)`` of positive ints, or a ValueError naming ``who``."""
    try:
        shape = tuple(int(s) for s in memory_shape)
        ok = len(shape) == 2 and all(s > 0 for s in shape) and shape == tuple(memory_shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{who}: memory_shape must be a pair (N, M) of positive ints, "
                         f"got {memory_shape!r}")
    return shape


class Memory(Layer):
    r"""The memory :math:`M_0 \in \mathbb R^{N \times M}` the NTM starts from.

    :math:`N` is the number of locations and :math:`M` the size of each. Every sequence of a
    batch starts from the same :math:`M_0`.

    Parameters
    ----------
    memory_shape : tuple of int
        ``(N, M)``.
    memory_init : initializer, array or shared variable
        :math:`M_0`. The default, a small constant, trains fastest (Collier & Beel, 2018),
        provided the heads' initial weightings are focused (see :class:`ntm.init.OneHot`).
    learn_init : bool
        Whether :math:`M_0` is trained (tagged ``trainable``).
    """

    def __init__(self, memory_shape, memory_init=Constant(1e-6), learn_init=True, **kwargs):
        self.memory_shape = check_memory_shape(memory_shape, "Memory")
        super().__init__(self.memory_shape, **kwargs)
        self.learn_init = learn_init
        self.memory_init = self.add_param(memory_init, self.memory_shape, name="memory_init",
                                          trainable=learn_init, regularizable=False)

    def get_output_shape_for(self, input_shape):
        return self.memory_shape

    def get_output_for(self, input=None, **kwargs):
        return self.memory_init

    def initial_state(self, batch_size):
        """:math:`M_0` repeated over a batch: shape ``(batch_size, N, M)``."""
        return pt.alloc(self.memory_init, batch_size, *self.memory_shape)
