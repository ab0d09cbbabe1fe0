r"""The Neural Turing Machine as a layer: one ``pytensor.scan`` over time."""
import pytensor
import pytensor.tensor as pt

from .controllers import Controller
from .heads import ReadHead, ReadHeadCollection, WriteHead, WriteHeadCollection
from .implementation import active
from .lasagne.layers.base import MergeLayer
from .lasagne.utils import unique
from .memory import Memory
from .recurrence import recurrence

__all__ = ["NTMLayer"]


class NTMLayer(MergeLayer):
    r"""A Neural Turing Machine (Graves, Wayne & Danihelka, 2014) over a sequence.

    At each time step :math:`t`, in this order (as NTM-Lasagne):

    1. write, with the write heads' previous weightings :math:`w^w_{t-1}` and the erase and
       add vectors emitted with them: :math:`M_t = M_{t-1} \odot \prod_i (1 - w^i e^{i\top})
       + \sum_i w^i a^{i\top}`;
    2. read with the read heads' previous weightings: :math:`r^i_t = w^{r,i\top}_{t-1} M_t`;
    3. run the controller: :math:`h_t = \mathrm{controller}(x_t, r_t, h_{t-1})`;
    4. address: every head emits its key, strength, gate, shift and sharpening from
       :math:`h_t` and gets its new weighting from :math:`M_t` and its previous weighting
       (write heads also emit the erase and add vectors used at the next step).

    The output is :math:`h_t` for every step, ``(batch, time, num_units)`` (or
    ``(batch, num_units)`` with ``only_return_final``).

    Parameters
    ----------
    incoming : Layer
        The input sequence, ``(batch, time, features)``.
    memory : :class:`~ntm.memory.Memory`
    controller : :class:`~ntm.controllers.Controller`
        Built on the same input (its ``num_reads`` must equal the number of read heads).
    heads : list of :class:`~ntm.heads.ReadHead` and :class:`~ntm.heads.WriteHead`
        Any number of each kind (at least one head in all), built on ``controller``.
    only_return_final : bool
        Return only the last step's output.
    mask_input : Layer, optional
        A ``(batch, time)`` mask: where it is 0 the whole state (memory, controller, weightings)
        is held, so sequences of different lengths can share a batch.

    Notes
    -----
    ``get_output(l_ntm, get_details=True)`` returns ``[memory, hidden, state, write_weights,
    read_weights]``, batch-major: ``(batch, time, N, M)``, ``(batch, time, num_units)``,
    ``(batch, time, state size)``, ``(batch, time, write heads, N)`` and
    ``(batch, time, read heads, N)``; each is the value after the step.

    Besides its states, the scan outputs at every step values that its gradient would
    otherwise compute again: the read vectors and, with the fused implementation
    (:mod:`ntm.accel`), each kind of head's similarities :math:`K(k, M_t[j])`, their keys
    :math:`k = \tanh(\cdot)` and their addressing intermediates (see
    :meth:`ntm.implementation.Implementation.saved_for_gradient`). The scan's gradient
    (:mod:`ntm.recurrence`) reads them, so the backward step does not repeat the read and
    similarity passes over the memory nor the addressing. They cost
    :math:`T B (R M + H (3 N + M + 1))` stored values for :math:`R` read heads and :math:`H`
    heads; a function compiled without the gradient drops them.
    """

    def __init__(self, incoming, memory, controller, heads, only_return_final=False,
                 mask_input=None, **kwargs):
        incomings = [incoming] + ([mask_input] if mask_input is not None else [])
        super().__init__(incomings, **kwargs)
        input_shape = self.input_shapes[0]
        if len(input_shape) != 3:
            raise ValueError(f"NTMLayer: the input must have shape (batch, time, features), got "
                             f"{input_shape} ({len(input_shape)} dimensions)")
        if mask_input is not None and len(self.input_shapes[1]) != 2:
            raise ValueError(f"NTMLayer: mask_input must have shape (batch, time), got "
                             f"{self.input_shapes[1]}")
        if not isinstance(memory, Memory):
            raise TypeError(f"NTMLayer: memory must be a Memory layer, got {memory!r}")
        if not isinstance(controller, Controller):
            raise TypeError(f"NTMLayer: controller must be a Controller, got {controller!r}")
        heads = list(heads)
        if not heads:
            raise ValueError("NTMLayer: heads is empty; give at least one ReadHead or WriteHead")
        if any(not isinstance(h, (ReadHead, WriteHead)) for h in heads):
            raise TypeError(f"NTMLayer: heads must be ReadHead or WriteHead layers, got {heads}")
        if controller.input_shape[-1] != input_shape[-1]:
            raise ValueError(f"NTMLayer: the controller expects {controller.input_shape[-1]} "
                             f"input features, the input has {input_shape[-1]}")
        for name, shape in [("controller", controller.memory_shape)] + [
                (f"head {i} ({h.__class__.__name__})", h.memory_shape)
                for i, h in enumerate(heads)]:
            if shape != memory.memory_shape:
                raise ValueError(f"NTMLayer: the {name} has memory_shape {shape}, the memory "
                                 f"has {memory.memory_shape}")
        for i, head in enumerate(heads):
            if head.input_layer is not controller:
                raise ValueError(f"NTMLayer: head {i} ({head.__class__.__name__}) is not built "
                                 "on this controller")
        read_heads = [h for h in heads if isinstance(h, ReadHead)]
        write_heads = [h for h in heads if isinstance(h, WriteHead)]
        if controller.num_reads != len(read_heads):
            raise ValueError(f"NTMLayer: the controller has num_reads={controller.num_reads} "
                             f"but there are {len(read_heads)} read heads")
        self.memory, self.controller, self.heads = memory, controller, heads
        self.read_heads = ReadHeadCollection(read_heads)
        self.write_heads = WriteHeadCollection(write_heads)
        self.only_return_final = only_return_final
        self.get_output_kwargs = ["get_details"]

    def get_params(self, unwrap_shared=True, **tags):
        """The parameters of the memory, the controller and the heads (and of this layer)."""
        params = super().get_params(unwrap_shared=unwrap_shared, **tags)
        for layer in [self.memory, self.controller] + self.heads:
            params = params + layer.get_params(unwrap_shared=unwrap_shared, **tags)
        return unique(params)

    def get_output_shape_for(self, input_shapes):
        batch, time = input_shapes[0][:2]
        if self.only_return_final:
            return (batch, self.controller.num_units)
        return (batch, time, self.controller.num_units)

    def get_output_for(self, inputs, get_details=False, **kwargs):
        """The symbolic output for ``inputs`` (the sequence and, if given, the mask).

        Parameters
        ----------
        get_details : bool
            Return ``[memory, hidden, state, write_weights, read_weights]`` (see the class
            notes) instead of the output.
        """
        input = inputs[0]
        mask = inputs[1] if len(inputs) > 1 else None
        batch_size = input.shape[0]
        controller, reads, writes = self.controller, self.read_heads, self.write_heads
        has_writes, has_reads = len(writes) > 0, len(reads) > 0

        # Work that depends only on the input is done for all steps at once, time-major.
        projected = controller.project_input(input).dimshuffle(1, 0, 2)
        sequences = [projected]
        if mask is not None:
            sequences.append(pt.cast(mask, pytensor.config.floatX).dimshuffle(1, 0))

        hidden0, state0 = controller.outputs_info(batch_size)
        # A controller whose state is its output (state_size 0) needs no second carried state.
        carries_state = controller.state_size > 0
        initial = [self.memory.initial_state(batch_size), hidden0]
        if carries_state:
            initial.append(state0)
        if has_writes:
            emitted0 = writes.emit(hidden0)
            initial += [writes.initial_weights(batch_size), emitted0["erase"], emitted0["add"]]
        if has_reads:
            initial.append(reads.initial_weights(batch_size))

        # The step's outputs after its states, kept for the backward pass (class notes).
        implementation = active()
        saves = implementation.num_saved > 0
        num_saved = int(has_reads) + implementation.num_saved * (int(has_writes) + int(has_reads))

        def step(*args):
            x_t = args[0]
            m_t = args[1] if mask is not None else None
            previous = list(args[2:] if mask is not None else args[1:])
            memory, hidden = previous[:2]
            state = previous[2] if carries_state else hidden
            rest = previous[3:] if carries_state else previous[2:]
            if has_writes:
                write_weights, erase, add = rest[:3]
                memory = writes.write(write_weights, erase, add, memory, implementation)
                rest = rest[3:]
            read_weights = rest[0] if has_reads else None
            read_vectors = (reads.read(read_weights, memory, implementation) if has_reads
                            else pt.zeros((x_t.shape[0], 0, self.memory.memory_shape[1])))
            hidden, state = controller.step(x_t, read_vectors, hidden, state,
                                            input_projected=True)
            new = [memory, hidden] + ([state] if carries_state else [])
            saved = [read_vectors] if has_reads else []
            if has_writes:
                emitted = writes.emit(hidden)
                new_write_weights = writes.address(emitted, write_weights, memory,
                                                   implementation, save_intermediates=saves)
                new += [new_write_weights, emitted["erase"], emitted["add"]]
                if saves:
                    saved += implementation.saved_for_gradient(new_write_weights)
            if has_reads:
                new.append(reads.address(reads.emit(hidden), read_weights, memory,
                                         implementation, save_intermediates=saves))
                if saves:
                    saved += implementation.saved_for_gradient(new[-1])
            if m_t is not None:
                # Hold every state where the mask is 0.
                new = [pt.switch(pt.shape_padright(m_t, n.ndim - 1) > 0, n, p)
                       for n, p in zip(new, previous)]
            return new + saved

        # One scan, differentiated by one backward scan that reads the saved outputs
        # (ntm.recurrence); parameter-only work (the heads' joined weights, ...) enters it as
        # non-sequences, so that the gradient accumulates it whole.
        # (A scan that names a mode is named after it too: PyTensor takes two scans that
        # differ only by their mode for the same one.)
        name = ("ntm_scan" if implementation.scan_mode is None
                else f"ntm_scan_{implementation.name}")
        outputs = recurrence(step, sequences, initial, num_extra=num_saved, name=name,
                             mode=implementation.scan_mode)
        outputs = outputs[:len(initial)]  # the states
        hidden_seq = outputs[1].dimshuffle(1, 0, 2)
        if not get_details:
            return hidden_seq[:, -1] if self.only_return_final else hidden_seq
        memory_seq = outputs[0].dimshuffle(1, 0, 2, 3)
        state_seq = outputs[2].dimshuffle(1, 0, 2) if carries_state else hidden_seq
        first_weights = 3 if carries_state else 2
        time = input.shape[1]
        N = self.memory.memory_shape[0]
        write_seq = (outputs[first_weights].dimshuffle(1, 0, 2, 3) if has_writes
                     else pt.zeros((batch_size, time, 0, N)))
        read_seq = (outputs[-1].dimshuffle(1, 0, 2, 3) if has_reads
                    else pt.zeros((batch_size, time, 0, N)))
        return [memory_seq, hidden_seq, state_seq, write_seq, read_seq]
