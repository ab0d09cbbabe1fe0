"""Time a LeNet-sized network's training step: ``ntm.lasagne`` on PyTensor against PyTorch.

The network is LeNet's shape on 28x28 images: a 5x5 convolution with 20 filters, 2x2 max
pooling, a 5x5 convolution with 50 filters, 2x2 max pooling (all rectified), a dense layer of
500 rectified units and a 10-way softmax. One training step is the forward pass, the
cross-entropy loss, the backward pass and an SGD update, on a batch of 128 in float32. The
PyTorch model is the same network, eager, from the same initial weights, on the same CPU
threads. The script checks that both give the same loss from those weights, then times
``--steps`` steps of each (after ``--warmup`` untimed ones) in one run and prints the
median, min and max per step, and where PyTensor's time goes (its profiler, by op)::

    python benchmarks/lenet.py                          # 1 thread, 20 steps, FAST_RUN
    python benchmarks/lenet.py --threads 2 --steps 50
    python benchmarks/lenet.py --no-blas                # PyTensor without SciPy's OpenBLAS

PyTensor installed from PyPI links no BLAS into its C code; by default the step is compiled
inside :func:`ntm.accel.blas.linked`, which links it to the OpenBLAS that SciPy ships (the
project's explicit switch; it changes nothing in PyTensor outside the compilation).
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BATCH = 128


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/lenet.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for both libraries (default 1)")
    parser.add_argument("--mode", default="FAST_RUN", help="PyTensor mode (default FAST_RUN)")
    parser.add_argument("--no-blas", action="store_true",
                        help="do not link PyTensor's C code to SciPy's OpenBLAS")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the profile of where PyTensor's time goes")
    args = parser.parse_args(argv)
    for name in ("steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected a positive integer, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup: expected 0 or more, got {args.warmup}")
    return args


def initial_weights(seed=0):
    """Glorot-uniform weights and zero biases, in Lasagne's layouts (W of a dense layer is
    ``(inputs, units)``, of a convolution ``(filters, channels, rows, columns)``)."""
    import numpy as np
    rng = np.random.RandomState(seed)

    def glorot(shape, fan_in, fan_out):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, shape).astype("float32")

    return {"conv1.W": glorot((20, 1, 5, 5), 25, 20 * 25), "conv1.b": np.zeros(20, "float32"),
            "conv2.W": glorot((50, 20, 5, 5), 20 * 25, 50 * 25),
            "conv2.b": np.zeros(50, "float32"),
            "dense.W": glorot((800, 500), 800, 500), "dense.b": np.zeros(500, "float32"),
            "out.W": glorot((500, 10), 500, 10), "out.b": np.zeros(10, "float32")}


def build_pytensor_step(weights, mode, blas, profile=False):
    """The compiled step ``train(x, y) -> loss`` of the ``ntm.lasagne`` network, and its
    parameters by name.

    The convolutions are Lasagne's default, true convolutions (``flip_filters=True``)."""
    import pytensor
    import pytensor.tensor as pt

    from ntm.accel.blas import linked
    from ntm.lasagne import layers, nonlinearities, objectives, updates

    x = pt.tensor4("x", dtype="float32")
    y = pt.ivector("y")
    rectify = nonlinearities.rectify
    conv1 = layers.Conv2DLayer(layers.InputLayer((None, 1, 28, 28), x), 20, 5,
                               W=weights["conv1.W"], b=weights["conv1.b"], nonlinearity=rectify)
    conv2 = layers.Conv2DLayer(layers.MaxPool2DLayer(conv1, 2), 50, 5, W=weights["conv2.W"],
                               b=weights["conv2.b"], nonlinearity=rectify)
    dense = layers.DenseLayer(layers.MaxPool2DLayer(conv2, 2), 500, W=weights["dense.W"],
                              b=weights["dense.b"], nonlinearity=rectify)
    net = layers.DenseLayer(dense, 10, W=weights["out.W"], b=weights["out.b"],
                            nonlinearity=nonlinearities.softmax)
    named = {f"{name}.{p}": getattr(layer, p) for name, layer in
             (("conv1", conv1), ("conv2", conv2), ("dense", dense), ("out", net))
             for p in ("W", "b")}
    loss = objectives.categorical_crossentropy(layers.get_output(net), y).mean()
    params = layers.get_all_params(net, trainable=True)
    step = updates.sgd(loss, params, learning_rate=0.01)
    with linked() if blas else contextlib.nullcontext():
        train = pytensor.function([x, y], loss, updates=step, mode=mode, profile=profile)
    return train, named


def build_torch_step(weights):
    """The same step in PyTorch eager: ``train(x, y) -> loss``, and its parameters by name.

    PyTorch's ``conv2d`` is a correlation, so it gets the filters flipped."""
    import torch
    import torch.nn.functional as F

    params = {k: torch.tensor(flip_filters(k, v).copy(), requires_grad=True)
              for k, v in weights.items()}
    optimizer = torch.optim.SGD(list(params.values()), lr=0.01)

    def train(x, y):
        h = F.max_pool2d(F.relu(F.conv2d(x, params["conv1.W"], params["conv1.b"])), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, params["conv2.W"], params["conv2.b"])), 2)
        h = F.relu(h.flatten(1) @ params["dense.W"] + params["dense.b"])
        loss = F.cross_entropy(h @ params["out.W"] + params["out.b"], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return train, params


def flip_filters(name, value):
    """Convolution filters flipped along their spatial axes; other values as they are."""
    return value[:, :, ::-1, ::-1] if name.startswith("conv") and name.endswith(".W") else value


def time_steps(train, batches, warmup, steps):
    for x, y in batches[:warmup]:
        train(x, y)
    times = []
    for x, y in batches[warmup:warmup + steps]:
        start = time.perf_counter()
        train(x, y)
        times.append(time.perf_counter() - start)
    return times


def profile_summary(function, top=10):
    """The op classes PyTensor's profiler charged most time to, as printable lines."""
    buffer = io.StringIO()
    function.profile.summary(file=buffer, n_ops_to_print=top, n_apply_to_print=0)
    lines = buffer.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("Class")), None)
    if start is None:
        return lines[:40]
    section = []
    for line in lines[start:]:
        if section and not line.strip():
            break
        section.append(line)
    return section[:top + 4]


def main(argv=None):
    args = parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    sys.path.insert(0, ROOT)
    import numpy as np  # after the thread counts are set
    import pytensor
    import torch

    pytensor.config.floatX = "float32"  # as a Lasagne user sets it to train in float32
    torch.set_num_threads(args.threads)
    rng = np.random.RandomState(1)
    count = args.warmup + args.steps
    images = rng.rand(count, BATCH, 1, 28, 28).astype("float32")
    labels = rng.randint(0, 10, (count, BATCH)).astype("int32")
    weights = initial_weights()

    start = time.perf_counter()
    train_pt, params_pt = build_pytensor_step(weights, args.mode, not args.no_blas)
    compile_seconds = time.perf_counter() - start
    train_torch, params_torch = build_torch_step(weights)

    # the same computation: the same loss from the same weights, and the same weights after
    # one step (so the same gradients)
    loss_pt = float(train_pt(images[0], labels[0]))
    loss_torch = train_torch(torch.from_numpy(images[0]), torch.from_numpy(labels[0]).long())
    print(f"first-step loss: PyTensor {loss_pt:.6f}, PyTorch {loss_torch:.6f}")
    moved = {name: np.abs(params_pt[name].get_value() - weights[name]).max()
             for name in weights}
    differences = {name: np.abs(params_pt[name].get_value() - flip_filters(
        name, params_torch[name].detach().numpy())).max() / moved[name] for name in weights}
    print("after one step, largest difference / largest change, per parameter: "
          + ", ".join(f"{name} {d:.1e}" for name, d in differences.items()))
    if not np.isclose(loss_pt, loss_torch, rtol=1e-4) or max(differences.values()) > 1e-3:
        print("the two networks disagree; the timings would compare different computations")
        return 1

    pt_batches = list(zip(images, labels))
    torch_batches = [(torch.from_numpy(x), torch.from_numpy(y).long()) for x, y in pt_batches]
    results = {"PyTensor (ntm.lasagne)": time_steps(train_pt, pt_batches, args.warmup,
                                                    args.steps),
               "PyTorch eager": time_steps(train_torch, torch_batches, args.warmup, args.steps)}

    print(f"LeNet training step, batch {BATCH}, float32, {args.threads} thread(s); "
          f"PyTensor {pytensor.__version__} mode {args.mode}"
          f"{'' if args.no_blas else ' + SciPy OpenBLAS'}, torch {torch.__version__}; "
          f"{args.steps} steps after {args.warmup} warm-up")
    print(f"PyTensor compile: {compile_seconds:.1f} s")
    print(f"{'':24s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s}")
    for name, times in results.items():
        ms = [1000 * t for t in times]
        print(f"{name:24s} {statistics.median(ms):10.1f} {min(ms):8.1f} {max(ms):8.1f}")
    ratio = (statistics.median(results["PyTensor (ntm.lasagne)"])
             / statistics.median(results["PyTorch eager"]))
    print(f"PyTensor / PyTorch (medians): {ratio:.2f}x")

    if not args.no_profile:
        # time each node, not only the whole call
        pytensor.config.profiling__time_thunks = True
        profiled, _ = build_pytensor_step(weights, args.mode, not args.no_blas, profile=True)
        for x, y in pt_batches[:max(args.steps // 2, 3)]:
            profiled(x, y)
        print("\nwhere PyTensor's step spends its time (profiler, by op class):")
        for line in profile_summary(profiled):
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
