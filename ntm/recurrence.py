r"""A recurrence over time as one ``scan``, with a gradient built here: one backward scan whose
step is the vector-Jacobian product of the forward step, built once.

PyTensor differentiates a ``scan`` by building a backward scan itself. For a step as large as
an NTM's, it builds the gradient of each of the step's inputs separately and clones the
backward expression once per input and recurrent output (so the copy model's backward step
had some 12,000 nodes for a forward step of 180, and compiling spent most of its time merging
them back), and it computes again values that the forward scan already output.
:func:`recurrence` runs the same forward scan, wrapped in an ``OpFromGraph`` (inlined when
compiled, so a function without the gradient is exactly the plain scan) whose gradient is:

.. math::
    \bar h_T = \frac{\partial L}{\partial h_T}, \qquad
    (\bar h_{t-1}, \bar x_t, \bar\theta_t) = \mathrm{VJP}_{f}(x_t, h_{t-1}, \theta)
    \big(\bar h_t + \tfrac{\partial L}{\partial h_t}\big), \qquad
    \bar\theta = \sum_t \bar\theta_t

for the step :math:`h_t = f(x_t, h_{t-1}, \theta)`, as one scan from :math:`t = T` down to 1.
The VJP is ``pytensor.grad`` of one symbolic step (with ``known_grads``), built once; in it,
every value the forward scan output at step :math:`t` (the new states, and the extra outputs a
step returns after its states) is read from the forward scan's outputs rather than computed
again. Parameter-only expressions of the step (:func:`ntm.hoisting.parameter_expressions`,
such as the heads' joined weights) and the shared variables it uses are inputs of both scans,
so the gradient accumulates each once per step and is cut into pieces after the loop.
"""
import warnings

import pytensor
import pytensor.tensor as pt
from pytensor.compile.builders import OpFromGraph
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Constant
from pytensor.graph.op import io_connection_pattern
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import graph_inputs
from pytensor.scan.op import Scan
from pytensor.tensor.subtensor import Subtensor, get_idx_list

from .hoisting import parameter_expressions

__all__ = ["recurrence", "Recurrence"]


def _like(variable, drop_leading_axis=False):
    """A new root variable of ``variable``'s type (without its first axis)."""
    shape = variable.type.shape[1:] if drop_leading_axis else variable.type.shape
    return pt.tensor(dtype=variable.dtype, shape=shape)


def _is_float(variable):
    return isinstance(variable.type, pt.TensorType) and variable.dtype.startswith("float")


class _Step:
    """One symbolic step on placeholders: ``outputs = f(sequences, states, parameters)``."""

    def __init__(self, step, sequences, initial_states, num_extra):
        self.sequences = [_like(s, drop_leading_axis=True) for s in sequences]
        self.states = [_like(h) for h in initial_states]
        outputs = list(step(*self.sequences, *self.states))
        if len(outputs) != len(self.states) + num_extra:
            raise ValueError(f"recurrence: the step returned {len(outputs)} outputs, expected "
                             f"{len(self.states)} states and {num_extra} others")
        # Parameter-only expressions, then the free variables left (shared variables, and any
        # other root the step closes over), become the step's parameters.
        hoisted = parameter_expressions(outputs)
        placeholders = [_like(p) for p in hoisted]
        outputs = graph_replace(outputs, dict(zip(hoisted, placeholders)), strict=False)
        own = set(self.sequences) | set(self.states) | set(placeholders)
        free = [v for v in graph_inputs(outputs)
                if v not in own and not isinstance(v, Constant)]
        free_placeholders = [v.type() for v in free]
        outputs = graph_replace(outputs, dict(zip(free, free_placeholders)), strict=False)
        self.outer_parameters = hoisted + free
        self.parameters = placeholders + free_placeholders
        self.outputs = outputs

    def applied(self, sequences, states, parameters):
        """The step's outputs on other variables."""
        replace = dict(zip(self.sequences + self.states + self.parameters,
                           list(sequences) + list(states) + list(parameters)))
        return graph_replace(self.outputs, replace, strict=False)


def _scan(options, *args, **kwargs):
    """``pytensor.scan`` with ``options`` (a mode and ``allow_gc``, or nothing)."""
    with warnings.catch_warnings():
        # PyTensor 3.1 and newer deprecate a scan's mode, but their scans given none link
        # their step with PyTensor's default linker, not the function's.
        warnings.filterwarnings("ignore", message="The `mode` argument of `scan`",
                                category=FutureWarning)
        return pytensor.scan(*args, **kwargs, **options)


class _Pullback:
    """The gradient of the forward scan (an ``OpFromGraph``'s ``pullback``): one backward scan.
    An object rather than a closure, so that a compiled function that holds the graph can be
    pickled."""

    def __init__(self, one, num_sequences, num_states, name, options, connection,
                 num_outputs=None):
        self.one, self.num_sequences, self.num_states = one, num_sequences, num_states
        self.name, self.options, self.connection = name, options, connection
        self.num_outputs = num_outputs

    def __call__(self, inputs, outputs, output_grads):
        one, num_sequences, num_states = self.one, self.num_sequences, self.num_states
        name, connection = self.name, self.connection
        # The op's outputs past the recurrence's own are the states before each step
        # (see recurrence); older pickles have none.
        num_outputs = getattr(self, "num_outputs", None) or len(outputs)
        outputs, before = outputs[:num_outputs], outputs[num_outputs:]
        output_grads = output_grads[:num_outputs]

        def scan(*args, **kwargs):
            return _scan(self.options, *args, **kwargs)

        sequences = inputs[:num_sequences]
        initial = inputs[num_sequences:num_sequences + num_states]
        parameters = inputs[num_sequences + num_states:]
        disconnected = [isinstance(g.type, DisconnectedType) for g in output_grads]
        # Only the outputs the cost reaches have a gradient to read at each step: the others
        # (the memory at every step, when only the predictions are trained) would be buffers
        # of zeros as long as the sequence, read and added to the carried gradients each step.
        given = [i for i, lost in enumerate(disconnected) if not lost]
        output_grads = [output_grads[i] for i in given]
        previous = before or [pt.concatenate([h0[None], h[:-1]], axis=0)
                              for h0, h in zip(initial, outputs[:num_states])]
        # The vector-Jacobian product of one step, on placeholders.
        carried = [_like(h) for h in one.states]
        output_grad_slices = [_like(outputs[i], drop_leading_axis=True) for i in given]
        grad_slice_of = dict(zip(given, output_grad_slices))
        output_slices = [_like(o, drop_leading_axis=True) for o in outputs]
        # The gradients given for the outputs go to copies of them: pytensor.grad takes a
        # known gradient as a variable's whole gradient, and an output may also be used
        # inside the step (the new memory is read, the read vectors feed the controller).
        exits = [pt.tensor_copy(out) for out in one.outputs]
        known = {out: (carry + grad_slice_of[i] if i in grad_slice_of else carry)
                 for i, (out, carry) in enumerate(zip(exits[:num_states], carried))}
        known.update((exits[i], grad_slice_of[i]) for i in given if i >= num_states)
        float_sequences = [i for i, s in enumerate(one.sequences) if _is_float(s)]
        float_parameters = [i for i, p in enumerate(one.parameters) if _is_float(p)]
        wrt = (one.states + [one.sequences[i] for i in float_sequences]
               + [one.parameters[i] for i in float_parameters])
        vjp = pytensor.grad(None, wrt=wrt, known_grads=known, disconnected_inputs="ignore",
                            return_disconnected="zero")
        # Read what the forward scan output instead of computing it again.
        vjp = graph_replace(vjp, dict(zip(one.outputs, output_slices)), strict=False)
        accumulators = [_like(one.parameters[i]) for i in float_parameters]
        # in the order scan passes them: sequences, states with an initial value, the rest
        step_inputs = (one.sequences + one.states + output_slices + output_grad_slices
                       + carried + accumulators + one.parameters)

        def inner(*args):
            replace = dict(zip(step_inputs, args))
            grads = graph_replace(vjp, replace, strict=False)
            state_grads = grads[:num_states]
            sequence_grads = grads[num_states:num_states + len(float_sequences)]
            parameter_grads = grads[num_states + len(float_sequences):]
            sums = [replace[a] + g for a, g in zip(accumulators, parameter_grads)]
            return state_grads + sequence_grads + sums

        results = scan(
            inner,
            sequences=list(sequences) + previous + list(outputs) + output_grads,
            outputs_info=([pt.zeros_like(h0) for h0 in initial]
                          + [None] * len(float_sequences)
                          + [pt.zeros_like(parameters[i]) for i in float_parameters]),
            non_sequences=list(parameters), go_backwards=True,
            # the length of a sequence input: from the forward scan's outputs, PyTensor would
            # infer it through the whole forward graph
            n_steps=sequences[0].shape[0] if sequences else None,
            name=None if name is None else f"{name}_grad", return_updates=False)
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        state_grads = [g[-1] for g in results[:num_states]]
        sequence_grads = iter(g[::-1] for g in
                              results[num_states:num_states + len(float_sequences)])
        parameter_grads = iter(g[-1] for g in results[num_states + len(float_sequences):])
        grads = ([next(sequence_grads) if i in float_sequences else disconnected_type()
                  for i in range(num_sequences)]
                 + state_grads
                 + [next(parameter_grads) if i in float_parameters else disconnected_type()
                    for i in range(len(one.parameters))])
        # An input on which no output with a gradient depends has none (PyTensor requires it).
        reaches = [any(connected and not disconnected[j] for j, connected in enumerate(row))
                   for row in connection]
        return [g if reach else disconnected_type() for g, reach in zip(grads, reaches)]


class Recurrence(OpFromGraph):
    """The forward scan as one ``OpFromGraph`` (inlined when compiled), whose gradient is
    :class:`_Pullback`'s backward scan. Pickled without the gradient graphs PyTensor caches
    on it (closures, rebuilt when a gradient is asked for again), so that a compiled function
    that holds the graph can be kept on disk."""

    def __getstate__(self):
        state = dict(self.__dict__)
        for cache, empty in (("_lop_op_cache", {}), ("_rop_op_cache", None)):
            if cache in state:
                state[cache] = empty
        return state


def recurrence(step, sequences, initial_states, num_extra=0, name=None, mode=None):
    """``pytensor.scan`` of ``step`` over the sequences, differentiated by one backward scan.

    Parameters
    ----------
    step : callable
        ``step(*sequence_slices, *previous_states)`` returning the new states followed by
        ``num_extra`` other outputs of the step (values the gradient may read instead of
        computing them again). It is called once, on placeholders.
    sequences : list of TensorVariable
        Iterated over their first axis (time).
    initial_states : list of TensorVariable
        The states before the first step.
    num_extra : int
        How many outputs follow the states.
    name : str, optional
        The scans' name (the backward scan's is ``name + "_grad"``).
    mode : str or Mode, optional
        The mode the scans name for their inner functions (``None``: PyTensor's choice).

    Returns
    -------
    list of TensorVariable
        For every state and every other output, its value after each step, ``(time, ...)``.
    """
    sequences, initial_states = list(sequences), list(initial_states)
    one = _Step(step, sequences, initial_states, num_extra)
    num_sequences, num_states = len(sequences), len(initial_states)
    # A named mode keeps the step's storage (allow_gc=False), which also keeps two builds
    # that differ only by their mode from being taken for the same scan.
    options = {} if mode is None else {"mode": mode, "allow_gc": False}

    def scan(*args, **kwargs):
        return _scan(options, *args, **kwargs)

    def forward(sequences, states, parameters):
        def inner(*args):
            return one.applied(args[:num_sequences],
                               args[num_sequences:num_sequences + num_states],
                               args[num_sequences + num_states:])

        return scan(inner, sequences=list(sequences),
                    outputs_info=list(states) + [None] * num_extra,
                    non_sequences=list(parameters), name=name, return_updates=False)

    # The forward scan on root variables of the outer inputs' types, as one OpFromGraph.
    inner_inputs = ([_like(s) for s in sequences] + [_like(h) for h in initial_states]
                    + [_like(p) for p in one.outer_parameters])
    inner_outputs = forward(inner_inputs[:num_sequences],
                            inner_inputs[num_sequences:num_sequences + num_states],
                            inner_inputs[num_sequences + num_states:])
    inner_outputs = list(inner_outputs) if isinstance(inner_outputs, (list, tuple)) \
        else [inner_outputs]
    num_outputs = len(inner_outputs)
    # The gradient reads the states before each step, h_0 ... h_{T-1}: the scan's buffer of
    # each state holds h_0 ... h_T, so they are a view of it (not a copy of the T steps
    # joined after h_0), given as more outputs of the op.
    before = [_states_before(h) for h in inner_outputs[:num_states]]
    if all(b is not None for b in before):
        inner_outputs += before
    connection = io_connection_pattern(inner_inputs, inner_outputs)
    backward = _Pullback(one, num_sequences, num_states, name, options, connection,
                         num_outputs)
    op = Recurrence(inner_inputs, inner_outputs, inline=True, pullback=backward,
                     name=name)
    results = op(*sequences, *initial_states, *one.outer_parameters)
    results = list(results) if isinstance(results, (list, tuple)) else [results]
    return results[:num_outputs]


def _states_before(states):
    """``buffer[:-1]`` for a state's steps ``buffer[1:]`` as ``pytensor.scan`` returns them
    (the scan's buffer starting with the initial state), else ``None``."""
    node = states.owner
    if node is None or not isinstance(node.op, Subtensor) or len(node.op.idx_list) != 1:
        return None
    buffer = node.inputs[0]
    if buffer.owner is None or not isinstance(buffer.owner.op, Scan):
        return None
    (index,) = get_idx_list(node.inputs, node.op.idx_list)
    if not (isinstance(index, slice) and index.stop is None and index.step is None
            and isinstance(index.start, Constant) and int(index.start.data) == 1):
        return None
    return buffer[:-1]
