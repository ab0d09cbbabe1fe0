r"""Parameter-only work out of a ``scan`` step, before its gradient is taken.

The NTM's step uses expressions of the parameters alone: the heads' weight matrices joined into
one (``W_stacked``, built once so that all heads of a kind emit with one product), their biases
likewise, a gated controller's stacked recurrent weights. Left inside the step they are
recomputed at every time step, and, worse, the gradient of the scan differentiates them there:
the backward step cuts the gradient of each joined matrix back into its pieces (a ``Split``)
and adds every piece to an accumulator of its own, :math:`\partial W_i \mathrel{+}=
(\partial W_{stacked})_i` for each of the :math:`n` parameters, at every step. PyTensor's
rewrites later move the forward ``Join`` out of the loop, but the gradient's ``Split`` and its
:math:`n` additions stay in.

:func:`scan_hoisting_parameters` runs ``pytensor.scan`` with every such expression passed in as
a non-sequence instead. The gradient then accumulates
:math:`\partial W_{stacked} \mathrel{+}= h_t^\top \delta_t` once per step, and cuts it into its
pieces once, after the loop. The forward pass computes the same values. The gradients are
the same sums, but PyTensor fuses the joined matrix's accumulation into one product-and-add
(``Gemm``), so the float rounding of the heads' weight gradients can differ in the last bits
(those of the copy model's heads do in float32; every other gradient is bit for bit the
same).
"""
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant, equal_computations
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import io_toposort

__all__ = ["parameter_expressions", "scan_hoisting_parameters"]


def parameter_expressions(outputs):
    """The largest float sub-expressions of ``outputs`` computed from shared variables and
    constants alone (at least one shared variable), in the order of the graph.

    Parameters
    ----------
    outputs : list of Variable

    Returns
    -------
    list of Variable
        Each is the output of an operation (a bare shared variable is not listed) and is used
        by an operation that depends on something else, or is itself one of ``outputs``.
    """
    outputs = list(outputs)
    # For each variable: None (depends on something that is not a parameter), or whether a
    # shared variable is among its inputs.
    parametric = {}
    nodes = io_toposort([], outputs)
    for node in nodes:
        for variable in node.inputs:
            if variable.owner is None and variable not in parametric:
                if isinstance(variable, SharedVariable):
                    parametric[variable] = True
                elif isinstance(variable, Constant):
                    parametric[variable] = False
                else:
                    parametric[variable] = None
        kinds = [parametric[variable] for variable in node.inputs]
        kind = None if any(k is None for k in kinds) else any(kinds)
        for variable in node.outputs:
            parametric[variable] = kind

    def hoistable(variable):
        return (variable.owner is not None and parametric.get(variable) is True
                and isinstance(variable.type, pt.TensorType)
                and variable.dtype.startswith("float"))

    found = []
    seen = set()
    for node in nodes:
        if parametric[node.outputs[0]] is not None:
            continue  # the node itself is parameter-only: its inputs are not the largest
        for variable in node.inputs:
            if hoistable(variable) and variable not in seen:
                seen.add(variable)
                found.append(variable)
    for variable in outputs:
        if hoistable(variable) and variable not in seen:
            seen.add(variable)
            found.append(variable)
    return found


def _placeholder(variable, drop_leading_axis=False):
    shape = variable.type.shape[1:] if drop_leading_axis else variable.type.shape
    return pt.tensor(dtype=variable.dtype, shape=shape)


def scan_hoisting_parameters(step, sequences, outputs_info, **scan_options):
    """``pytensor.scan(step, sequences, outputs_info, **scan_options)``, with the step's
    parameter-only expressions (:func:`parameter_expressions`) computed outside the loop.

    ``step`` is called once on placeholders to find them, then by ``scan`` as usual; in what
    it returns, each of those expressions (the same variable, or the same computation built
    again) is replaced by a non-sequence input carrying its value.

    Parameters
    ----------
    step : callable
        ``step(*sequence_slices, *previous_outputs)``, returning the list of new outputs.
    sequences, outputs_info : list of TensorVariable
        As ``pytensor.scan``'s (``None`` in ``outputs_info``: an output not fed back).
    **scan_options
        Passed to ``pytensor.scan`` (not ``non_sequences``).

    Returns
    -------
    TensorVariable or list of TensorVariable
        What ``pytensor.scan`` returns for these arguments.
    """
    if "non_sequences" in scan_options:
        raise TypeError("scan_hoisting_parameters: non_sequences are found, not given")
    sequences, outputs_info = list(sequences), list(outputs_info)
    # (an output without initial value, None, is not passed to the step)
    trial = step(*[_placeholder(s, drop_leading_axis=True) for s in sequences],
                 *[_placeholder(o) for o in outputs_info if o is not None])
    hoisted = parameter_expressions(trial)
    if not hoisted:
        return pytensor.scan(step, sequences=sequences, outputs_info=outputs_info,
                             **scan_options)
    count = len(hoisted)

    def hoisting_step(*args):
        inner = args[-count:]
        new = list(step(*args[:-count]))
        # The same variables as at the trial call, or the same computation built again.
        replacements = {}
        for found in parameter_expressions(new):
            for outer, placeholder in zip(hoisted, inner):
                if found is outer or equal_computations([found], [outer]):
                    replacements[found] = placeholder
                    break
        return graph_replace(new, replacements, strict=False)

    return pytensor.scan(hoisting_step, sequences=sequences, outputs_info=outputs_info,
                         non_sequences=hoisted, **scan_options)
