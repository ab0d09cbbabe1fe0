r"""The NTM's memory-sized computations as the fused ops of :mod:`ntm.accel.memory_kernels`
and :mod:`ntm.accel.addressing_kernels`: one pass over the memory for each, and one for its
gradient.

:class:`FusedImplementation` computes what :class:`ntm.implementation.Implementation` computes
(same equations, same shapes; tests compare values and gradients), and gives a scan the
intermediates its gradient would otherwise compute again: the similarities of the heads'
keys, the keys, and the addressing's saved intermediates (the content weighting, the
sharpening's powers and their sum).
"""
from ..heads import SHARPEN_EPSILON
from ..implementation import SIMILARITY_EPSILON, Implementation
from .addressing_kernels import Addressing
from .memory_kernels import CosineSimilarity, MemoryRead, MemoryWrite

__all__ = ["FusedImplementation"]


class FusedImplementation(Implementation):
    """The fused ops, for PyTensor's C (``CVM``, ``C``) and Numba backends.

    Parameters
    ----------
    scan_mode : str or pytensor.compile.mode.Mode, optional
        The mode a scan over such a step names for its inner function (where PyTensor still
        compiles the inner function with a mode of its own).
    """

    name = "fused"
    num_saved = 3

    def __init__(self, scan_mode=None):
        self.scan_mode = scan_mode

    def cosine_similarity(self, keys, memory, eps):
        return CosineSimilarity(eps)(keys, memory)

    def read(self, weights, memory):
        return MemoryRead()(weights, memory)

    def write(self, memory, weights, erase, add):
        return MemoryWrite()(memory, weights, erase, add)

    def address(self, emitted, previous_weights, memory, num_locations, num_shifts,
                shift_mode, save_intermediates=False):
        similarities = self.cosine_similarity(emitted["key"], memory, SIMILARITY_EPSILON)
        addressing = Addressing(shift_mode, SHARPEN_EPSILON,
                                save_intermediates=save_intermediates)
        outputs = addressing(similarities, emitted["beta"], emitted["gate"], emitted["shift"],
                             emitted["gamma"], previous_weights)
        return outputs[0] if save_intermediates else outputs

    def saved_for_gradient(self, weights):
        """The addressing op's first input (the similarities of the heads' keys), the keys
        (the similarity op's first input) and its saved intermediates (its second output)."""
        node = weights.owner
        if not (node is not None and isinstance(node.op, Addressing)
                and node.op.save_intermediates):
            raise RuntimeError("FusedImplementation: the weightings were not made by an "
                               "Addressing op that saves its intermediates")
        similarities = node.inputs[0]
        if not (similarities.owner is not None
                and isinstance(similarities.owner.op, CosineSimilarity)):
            raise RuntimeError("FusedImplementation: the similarities were not made by the "
                               "CosineSimilarity op")
        return [similarities, similarities.owner.inputs[0], node.outputs[1]]
