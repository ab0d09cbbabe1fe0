r"""Time the copy-task NTM's training step in PyTorch (eager), and check it against ours.

The model is the one :func:`utils.training.build_ntm` builds for the copy task with its
defaults, written independently in PyTorch from the equations (DESIGN.md): 9 inputs (8 bits
and the delimiter), a dense rectifier controller of 100 units fed the input and the previous
read vector, a 128 x 20 memory whose initial state is a parameter, one write head and one read
head with 3 circular shifts and one-hot initial weightings, and a dense sigmoid layer of 8
units at every step. A training step is the forward pass over a copy sequence of ``length``
vectors (``2 * length + 1`` time steps, as :class:`utils.generators.CopyTask`), the masked
binary cross-entropy of :func:`utils.training.masked_loss`, the backward pass, total-norm
clipping of the gradients at 10 and an Adam step, in float32: the step that
:class:`utils.training.Trainer` compiles with ``optimizer="adam"``, less its guard against
non-finite steps (``benchmarks/train_step.py`` times our step, with neither the mask nor the
clipping).

For each batch size and length the table gives the time to build the model and optimizer and
the median (min-max) of ``--steps`` timed steps after 3 warm-up steps. On a machine busy
with other processes, give ``--threads 1``: PyTorch's threads wait for each other at every
operation, and a step can then take a hundred times longer. With ``--compile`` the
cell of one time step is also compiled with ``torch.compile`` (the loop over time stays in
Python: compiling the unrolled sequence would recompile for every length); its compile time is
the first step's.

``--check`` builds our model in float64, copies its parameters (made non-trivial by noise)
into the PyTorch model and compares the predictions, the loss and the gradient of the loss with
respect to every trainable parameter on one random batch; it fails (status 1) when any
difference exceeds 1e-8.

PyTorch is not a dependency of the project; without it the script says how to install it::

    python benchmarks/pytorch_ntm.py                           # batch 1 and 16, length 20 and 120
    python benchmarks/pytorch_ntm.py --threads 1 --steps 20
    python benchmarks/pytorch_ntm.py --batch-sizes 16 --lengths 20 --threads 1 --compile
    python benchmarks/pytorch_ntm.py --check
"""
import argparse
import logging
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

try:
    import torch
except ImportError:
    torch = None

__all__ = ["TorchNTM", "masked_loss", "make_train_step", "time_training", "check", "main"]

INSTALL_HINT = ("PyTorch is not installed (the project does not need it); to run this "
                "benchmark: pip install torch --index-url https://download.pytorch.org/whl/cpu")
#: As ntm.similarities.cosine_similarity, ntm.heads.SHARPEN_EPSILON and
#: utils.training.PROBABILITY_CLIP.
COSINE_EPSILON, SHARPEN_EPSILON, PROBABILITY_CLIP = 1e-6, 1e-6, 1e-6
TOLERANCE = 1e-8
WARMUP_STEPS = 3


def _components(memory_size, num_shifts, write):
    """What a head emits and its size, in the order of our stacked weight matrices."""
    sizes = {"key": memory_size, "beta": 1, "gate": 1, "shift": num_shifts, "gamma": 1}
    return {**sizes, "erase": memory_size, "add": memory_size} if write else sizes


class TorchNTM(torch.nn.Module if torch else object):
    r"""The copy task's NTM with one write and one read head, batch-major.

    Parameters are named as ours (``controller.W_in_to_hid``, ``write0.W_hid_to_key``, ...;
    see :meth:`param`) and initialised as ours: Glorot-uniform weights, zero biases, memory
    :math:`M_0 = 10^{-6}`, one-hot :math:`w_0` (not trained) and :math:`h_0 = 0` (not trained).

    Parameters
    ----------
    input_size, output_size, num_units : int
    memory_shape : tuple of int
        ``(N, M)``.
    num_shifts : int
        :math:`S`, odd.
    dtype : torch.dtype, optional
        Default: PyTorch's default float type.
    """

    def __init__(self, input_size=9, output_size=8, num_units=100, memory_shape=(128, 20),
                 num_shifts=3, dtype=None):
        super().__init__()
        self.memory_shape, self.num_shifts = tuple(memory_shape), num_shifts
        N, M = self.memory_shape
        shapes = {"memory.memory_init": (N, M), "controller.hid_init": (1, num_units),
                  "controller.W_in_to_hid": (input_size, num_units),
                  "controller.b_in_to_hid": (num_units,),
                  "controller.W_reads_to_hid": (M, num_units),
                  "controller.b_reads_to_hid": (num_units,)}
        for head, write in (("write0", True), ("read0", False)):
            for component, size in _components(M, num_shifts, write).items():
                shapes[f"{head}.W_hid_to_{component}"] = (num_units, size)
                shapes[f"{head}.b_hid_to_{component}"] = (size,)
            shapes[f"{head}.weights_init"] = (N,)
        shapes.update({"output.W": (num_units, output_size), "output.b": (output_size,)})
        self.params = torch.nn.ParameterDict()
        for name, shape in shapes.items():
            value = torch.zeros(shape, dtype=dtype)
            if name.split(".")[1].startswith("W"):
                torch.nn.init.xavier_uniform_(value)  # U(+-sqrt(6 / (fan_in + fan_out)))
            elif name.endswith("memory_init"):
                value.fill_(1e-6)
            elif name.endswith("weights_init"):
                value[0] = 1.0
            trainable = not name.endswith(("hid_init", "weights_init"))
            self.params[name.replace(".", "__")] = torch.nn.Parameter(value, trainable)
        softplus = torch.nn.functional.softplus
        self.nonlinearities = {"key": torch.tanh, "beta": softplus, "gate": torch.sigmoid,
                               "shift": lambda x: torch.softmax(x, dim=-1),
                               "gamma": lambda x: 1.0 + softplus(x),
                               "erase": torch.sigmoid, "add": torch.tanh}
        self._cell_fn = self._cell

    def param(self, name):
        """The parameter of our name ``name`` (e.g. ``"read0.W_hid_to_shift"``)."""
        return self.params[name.replace(".", "__")]

    def names(self, trainable=None):
        """Our names of the parameters (only the trainable ones, or the others, if asked)."""
        return [key.replace("__", ".") for key, value in self.params.items()
                if trainable is None or value.requires_grad == trainable]

    def compile_cell(self, **options):
        """Compile the step of one time step with ``torch.compile``."""
        # Its note that a CPU-only machine has no CUDA runtime would cut the table.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        torch._dynamo.reset()  # every model compiles afresh (within the cache on disk)
        self._cell_fn = torch.compile(self._cell, **options)

    def _stacked(self, head):
        # One product per head and step, as our HeadCollection.
        names = _components(self.memory_shape[1], self.num_shifts, head == "write0")
        return (torch.cat([self.param(f"{head}.W_hid_to_{c}") for c in names], dim=1),
                torch.cat([self.param(f"{head}.b_hid_to_{c}") for c in names]))

    def _emit(self, hidden, W, b, write):
        r"""Key, strength, gate, shift, sharpening (and erase, add): :math:`\varphi(h W + b)`."""
        sizes = _components(self.memory_shape[1], self.num_shifts, write)
        blocks = torch.split(hidden @ W + b, list(sizes.values()), dim=-1)
        return {c: self.nonlinearities[c](block) for c, block in zip(sizes, blocks)}

    def _address(self, emitted, previous, memory):
        r"""The new weighting ``(batch, N)`` of a head.

        .. math::
            w^c[i] &= \mathrm{softmax}_i\left(\beta \frac{k \cdot M[i]}
                      {\lVert k \rVert \lVert M[i] \rVert + \epsilon}\right) \\
            w^g &= g w^c + (1 - g) w_{t-1} \\
            \tilde w[i] &= \textstyle\sum_k s[k]\, w^g[(i - k + \lfloor S/2 \rfloor) \bmod N] \\
            w[i] &= (\tilde w[i] + \epsilon)^\gamma
                    / \textstyle\sum_j (\tilde w[j] + \epsilon)^\gamma
        """
        key = emitted["key"]
        dots = torch.bmm(memory, key.unsqueeze(-1)).squeeze(-1)
        norms = (torch.sqrt((key * key).sum(-1, keepdim=True))
                 * torch.sqrt((memory * memory).sum(-1)) + COSINE_EPSILON)
        content = torch.softmax(emitted["beta"] * dots / norms, dim=-1)
        gate = emitted["gate"]
        gated = gate * content + (1.0 - gate) * previous
        shift, half = emitted["shift"], self.num_shifts // 2
        # torch.roll(w, j)[i] = w[i - j]: s[k] moves the focus k - S // 2 places forward.
        shifted = sum(shift[:, k:k + 1] * torch.roll(gated, k - half, dims=-1)
                      for k in range(self.num_shifts))
        # The epsilon keeps the gradient w.r.t. gamma finite at 0; the division by the maximum
        # (which sharpening ignores) keeps a large gamma from underflowing every location.
        shifted = shifted + SHARPEN_EPSILON
        powered = (shifted / shifted.amax(-1, keepdim=True)) ** emitted["gamma"]
        return powered / powered.sum(-1, keepdim=True)

    def _cell(self, projected, memory, w_write, erase, add, w_read, W_reads, W_write, b_write,
              W_read, b_read):
        r"""One time step, in our order.

        1. write with the previous write weighting and the erase and add vectors emitted with
           it: :math:`M_t = M_{t-1} \odot (1 - w e^\top) + w a^\top`;
        2. read with the previous read weighting: :math:`r_t = w^\top M_t`;
        3. controller: :math:`h_t = \max(0, x_t W_{in} + b_{in} + b_{reads} + r_t W_{reads})`
           (``projected`` holds the input's terms);
        4. both heads address :math:`M_t` from :math:`h_t` and their previous weighting.
        """
        w = w_write.unsqueeze(-1)
        memory = memory * (1.0 - w * erase.unsqueeze(1)) + w * add.unsqueeze(1)
        read = torch.bmm(w_read.unsqueeze(1), memory).squeeze(1)
        hidden = torch.relu(projected + read @ W_reads)
        emitted = self._emit(hidden, W_write, b_write, write=True)
        w_write = self._address(emitted, w_write, memory)
        w_read = self._address(self._emit(hidden, W_read, b_read, write=False), w_read, memory)
        return hidden, memory, w_write, emitted["erase"], emitted["add"], w_read

    def forward(self, x):
        """The predictions ``(batch, time, output_size)`` for ``x`` ``(batch, time, input)``."""
        p = self.param
        batch, time_steps = x.shape[:2]
        W_write, b_write = self._stacked("write0")
        W_read, b_read = self._stacked("read0")
        # The input's terms depend on nothing recurrent: one product for all steps.
        projected = (x @ p("controller.W_in_to_hid") + p("controller.b_in_to_hid")
                     + p("controller.b_reads_to_hid"))
        memory = p("memory.memory_init").expand(batch, *self.memory_shape)
        hidden = p("controller.hid_init").expand(batch, -1)
        first = self._emit(hidden, W_write, b_write, write=True)
        state = (memory, p("write0.weights_init").expand(batch, -1), first["erase"],
                 first["add"], p("read0.weights_init").expand(batch, -1))
        hiddens = []
        for t in range(time_steps):
            hidden, *state = self._cell_fn(projected[:, t], *state, p("controller.W_reads_to_hid"),
                                           W_write, b_write, W_read, b_read)
            hiddens.append(hidden)
        return torch.sigmoid(torch.stack(hiddens, dim=1) @ p("output.W") + p("output.b"))


def masked_loss(prediction, target, mask):
    r"""Binary cross-entropy summed over the channels, averaged over the scored steps.

    .. math::
        L = \frac{\sum_{b,t} m_{bt} \sum_c -y \log \hat p - (1 - y) \log(1 - \hat p)}
        {\max(1, \sum_{b,t} m_{bt})}, \qquad \hat p = \mathrm{clip}(p, 10^{-6}, 1 - 10^{-6})
    """
    p = prediction.clamp(PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    per_step = -(target * torch.log(p) + (1.0 - target) * torch.log(1.0 - p)).sum(-1)
    return (per_step * mask).sum() / mask.sum().clamp(min=1.0)


def make_train_step(model, optimizer, max_norm=10.0):
    """``step(x, y, mask) -> loss``: forward, backward, total-norm clipping, optimizer step."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step(x, y, mask):
        optimizer.zero_grad(set_to_none=True)
        loss = masked_loss(model(x), y, mask)
        loss.backward()
        # Scales by max_norm / (norm + 1e-6) above max_norm: the Trainer's rule up to its 1e-7.
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        return loss.item()
    return step


def time_training(batch_size, length, steps, compile_cell=False):
    """Build a model and time its training step on one copy batch.

    Returns
    -------
    dict
        ``build_s``, ``first_s`` (the first warm-up step, which compiles with
        ``compile_cell``) and ``step_ms``, the array of the timed steps.
    """
    from utils.generators import CopyTask

    x, y, mask = (torch.from_numpy(a) for a in CopyTask(
        size=8, batch_size=batch_size, seed=0, dtype=np.float32).sample_with_mask(length=length))
    torch.manual_seed(0)
    started = time.perf_counter()
    model = TorchNTM()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    if compile_cell:
        model.compile_cell()
    step = make_train_step(model, optimizer)
    build_s = time.perf_counter() - started
    times = []
    for _ in range(WARMUP_STEPS + steps):
        started = time.perf_counter()
        step(x, y, mask)
        times.append(time.perf_counter() - started)
    return {"build_s": build_s, "first_s": times[0],
            "step_ms": 1000 * np.array(times[WARMUP_STEPS:])}


def _row(batch_size, length, result, compiled=None):
    ms = result["step_ms"]
    cells = [str(batch_size), str(length), str(2 * length + 1),
             f"{1000 * result['build_s']:.1f} ms",
             f"{np.median(ms):.1f} ms ({ms.min():.1f}-{ms.max():.1f})",
             f"{1000 * batch_size / np.median(ms):.1f}"]
    if compiled is not None:
        if isinstance(compiled, str):
            cells += [compiled, ""]
        else:
            cms = compiled["step_ms"]
            cells += [f"{compiled['first_s']:.1f} s",
                      f"{np.median(cms):.1f} ms ({cms.min():.1f}-{cms.max():.1f})"]
    return "| " + " | ".join(cells) + " |"


def check():
    """Compare the PyTorch model with ours in float64; returns the exit status (0: agree)."""
    import pytensor
    import pytensor.tensor as pt

    pytensor.config.floatX = "float64"
    from ntm.lasagne import layers
    from ntm.lasagne.random import set_rng
    from utils import training

    set_rng(np.random.RandomState(0))
    ours = training.build_ntm(9, 8)
    params = layers.get_all_params(ours.l_output)
    trainable = layers.get_all_params(ours.l_output, trainable=True)
    rng = np.random.default_rng(0)
    # Noise on every trainable value, so that no path (biases, memory rows) is trivially zero.
    for param in trainable:
        param.set_value(param.get_value() + 0.3 * rng.standard_normal(param.get_value().shape))
    target, mask = pt.tensor3("target"), pt.matrix("mask")
    prediction = layers.get_output(ours.l_output)
    loss = training.masked_loss(prediction, target, mask)[0]
    function = pytensor.function([ours.l_input.input_var, target, mask],
                                 [prediction, loss] + pytensor.grad(loss, trainable),
                                 mode="FAST_COMPILE")

    model = TorchNTM(dtype=torch.float64)
    if sorted(model.names()) != sorted(p.name for p in params):
        raise RuntimeError(f"parameter names differ: {sorted(model.names())} vs "
                           f"{sorted(p.name for p in params)}")
    with torch.no_grad():
        for param in params:
            model.param(param.name).copy_(torch.from_numpy(param.get_value()))
    x = rng.integers(0, 2, (2, 42, 9)).astype(np.float64)
    y = rng.integers(0, 2, (2, 42, 8)).astype(np.float64)
    m = np.zeros((2, 42))
    m[:, 21:] = 1.0
    our_prediction, our_loss, *our_grads = function(x, y, m)
    torch_prediction = model(torch.from_numpy(x))
    torch_loss = masked_loss(torch_prediction, torch.from_numpy(y), torch.from_numpy(m))
    torch_grads = torch.autograd.grad(torch_loss, [model.param(p.name) for p in trainable])

    diffs = {"predictions": np.abs(our_prediction - torch_prediction.detach().numpy()).max(),
             "loss": abs(float(our_loss) - torch_loss.item())}
    print(f"float64, batch (2, 42, 9), loss {float(our_loss):.6f} (ours) {torch_loss.item():.6f} "
          f"(PyTorch)")
    print(f"max |difference| of the predictions: {diffs['predictions']:.2e}")
    print(f"|difference| of the loss:            {diffs['loss']:.2e}")
    print("gradients, max |difference| (max |gradient|):")
    for param, ours_g, theirs_g in zip(trainable, our_grads, torch_grads):
        diffs[param.name] = np.abs(ours_g - theirs_g.numpy()).max()
        print(f"  {param.name:28s} {diffs[param.name]:.2e} ({np.abs(ours_g).max():.2e})")
    worst = max(diffs, key=diffs.get)
    ok = diffs[worst] <= TOLERANCE
    print(f"{'OK' if ok else 'FAILED'}: largest difference {diffs[worst]:.2e} ({worst}), "
          f"tolerance {TOLERANCE:g}")
    return 0 if ok else 1


def _int_list(text):
    return [int(item) for item in text.split(",") if item.strip()]


def main(argv=None):
    """Run the timing table or, with ``--check``, the comparison; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=_int_list, default=[1, 16])
    parser.add_argument("--lengths", type=_int_list, default=[20, 120])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's choice)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the step with the time-step cell torch.compile'd")
    parser.add_argument("--check", action="store_true",
                        help="compare predictions, loss and gradients with our model instead")
    args = parser.parse_args(argv)
    if torch is None:
        print(INSTALL_HINT)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check:
        return check()

    print(f"copy NTM in PyTorch {torch.__version__} eager (dense 100, 1 read + 1 write head, "
          f"memory 128 x 20), float32, Adam, clipping at norm 10, threads: "
          f"{torch.get_num_threads()}, {args.steps} steps per row after {WARMUP_STEPS} warm-up "
          f"steps", flush=True)
    # One throwaway model first, so that the build column leaves out PyTorch's one-time setup.
    torch.optim.Adam(TorchNTM().parameters())
    header = ["batch", "length", "time steps", "build", "step median (min-max)", "seq/s"]
    if args.compile:
        header += ["compiled: first step", "compiled: step median (min-max)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    for batch_size in args.batch_sizes:
        for length in args.lengths:
            result = time_training(batch_size, length, args.steps)
            compiled = None
            if args.compile:
                try:
                    compiled = time_training(batch_size, length, args.steps, compile_cell=True)
                except Exception as error:  # a missing compiler, an unsupported operation...
                    message = str(error).strip().splitlines()
                    compiled = (f"skipped: {type(error).__name__}: "
                                f"{message[0][:80] if message else ''}")
            print(_row(batch_size, length, result, compiled), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
