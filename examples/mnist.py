#!/usr/bin/env python
"""Handwritten digit classification on MNIST with ntm.lasagne: the example Lasagne opens with,
its imports changed (``lasagne`` -> ``ntm.lasagne``, ``theano`` -> ``pytensor``).

Three models can be trained:

- ``mlp``: two hidden layers of 800 rectified units with dropout (20% on the input, 50% on
  the hidden layers) and a softmax output;
- ``custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID``: the same with ``DEPTH`` hidden layers of
  ``WIDTH`` units and the given dropout rates (``custom_mlp`` alone: 2,800,.2,.5);
- ``cnn``: two convolution (32 filters of 5x5) and 2x2 max-pooling stages, a dense layer of
  256 units with dropout, and a softmax output.

Each epoch trains with Nesterov momentum SGD on mini-batches of 500 and reports the training
loss, the validation loss and the validation accuracy; the end reports the test loss and
accuracy. The data are the four gzipped IDX files of MNIST, downloaded into ``--data-dir`` the
first time (or read from it if present)::

    python examples/mnist.py mlp 10
    python examples/mnist.py cnn 5 --data-dir ~/data/mnist
"""
import argparse
import gzip
import os
import sys
import time
import urllib.request

import numpy as np
import pytensor
import pytensor.tensor as pt

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntm import lasagne  # noqa: E402

#: Where the files are fetched from: Yann LeCun's page first, then a mirror of the same files.
SOURCES = ("https://yann.lecun.com/exdb/mnist/",
           "https://ossci-datasets.s3.amazonaws.com/mnist/")
FILES = {"train_images": "train-images-idx3-ubyte.gz",
         "train_labels": "train-labels-idx1-ubyte.gz",
         "test_images": "t10k-images-idx3-ubyte.gz",
         "test_labels": "t10k-labels-idx1-ubyte.gz"}


# ################## Download and prepare the MNIST dataset ##################

def download(filename, data_dir, sources=SOURCES):
    """Fetch ``filename`` into ``data_dir`` from the first source that answers."""
    os.makedirs(data_dir, exist_ok=True)
    target = os.path.join(data_dir, filename)
    errors = []
    for source in sources:
        print(f"Downloading {filename} from {source}")
        try:
            with urllib.request.urlopen(source + filename, timeout=60) as response:
                data = response.read()
        except OSError as exc:
            errors.append(f"{source}: {exc}")
            continue
        partial = target + ".part"
        with open(partial, "wb") as f:
            f.write(data)
        os.replace(partial, target)  # never leave half a file under the real name
        return target
    raise OSError(f"could not download {filename}: " + "; ".join(errors))


def _open(filename, data_dir):
    path = os.path.join(data_dir, filename)
    if not os.path.exists(path):
        download(filename, data_dir)
    return gzip.open(path, "rb")


def load_mnist_images(filename, data_dir):
    """Images of an IDX file as floats in [0, 1], shape ``(examples, 1, rows, columns)``."""
    with _open(filename, data_dir) as f:
        header = np.frombuffer(f.read(16), dtype=">i4")
        if header.size != 4 or header[0] != 2051:
            raise ValueError(f"{filename}: not an IDX image file (magic number 2051 expected)")
        count, rows, cols = (int(v) for v in header[1:])
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != count * rows * cols:
        raise ValueError(f"{filename}: expected {count * rows * cols} pixels, found {data.size}")
    # one channel, as the convolutional layers expect (examples, channels, rows, columns)
    return (data.reshape(count, 1, rows, cols) / np.float32(256)).astype(
        pytensor.config.floatX)


def load_mnist_labels(filename, data_dir):
    """Labels of an IDX file, as a vector of uint8."""
    with _open(filename, data_dir) as f:
        header = np.frombuffer(f.read(8), dtype=">i4")
        if header.size != 2 or header[0] != 2049:
            raise ValueError(f"{filename}: not an IDX label file (magic number 2049 expected)")
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(header[1]):
        raise ValueError(f"{filename}: expected {int(header[1])} labels, found {data.size}")
    return data


def load_dataset(data_dir=".", val_size=10000):
    """Training, validation and test sets; the last ``val_size`` training examples are kept
    apart for validation."""
    X_train = load_mnist_images(FILES["train_images"], data_dir)
    y_train = load_mnist_labels(FILES["train_labels"], data_dir)
    X_test = load_mnist_images(FILES["test_images"], data_dir)
    y_test = load_mnist_labels(FILES["test_labels"], data_dir)
    if not 0 < val_size < len(X_train):
        raise ValueError(f"val_size={val_size} must leave training examples (there are "
                         f"{len(X_train)})")
    X_train, X_val = X_train[:-val_size], X_train[-val_size:]
    y_train, y_val = y_train[:-val_size], y_train[-val_size:]
    return X_train, y_train, X_val, y_val, X_test, y_test


# ##################### Build the neural network model #######################

def build_mlp(input_var=None):
    """Two hidden layers of 800 rectified units, 20% dropout on the input and 50% on each
    hidden layer, and a 10-way softmax."""
    l_in = lasagne.layers.InputLayer(shape=(None, 1, 28, 28), input_var=input_var)
    l_in_drop = lasagne.layers.DropoutLayer(l_in, p=0.2)
    l_hid1 = lasagne.layers.DenseLayer(l_in_drop, num_units=800,
                                       nonlinearity=lasagne.nonlinearities.rectify,
                                       W=lasagne.init.GlorotUniform())
    l_hid1_drop = lasagne.layers.DropoutLayer(l_hid1, p=0.5)
    l_hid2 = lasagne.layers.DenseLayer(l_hid1_drop, num_units=800,
                                       nonlinearity=lasagne.nonlinearities.rectify)
    l_hid2_drop = lasagne.layers.DropoutLayer(l_hid2, p=0.5)
    return lasagne.layers.DenseLayer(l_hid2_drop, num_units=10,
                                     nonlinearity=lasagne.nonlinearities.softmax)


def build_custom_mlp(input_var=None, depth=2, width=800, drop_input=.2, drop_hidden=.5):
    """``depth`` hidden layers of ``width`` rectified units, with dropout of ``drop_input`` on
    the input and ``drop_hidden`` after each hidden layer (0 for none)."""
    network = lasagne.layers.InputLayer(shape=(None, 1, 28, 28), input_var=input_var)
    if drop_input:
        network = lasagne.layers.dropout(network, p=drop_input)
    for _ in range(depth):
        network = lasagne.layers.DenseLayer(network, width,
                                            nonlinearity=lasagne.nonlinearities.rectify)
        if drop_hidden:
            network = lasagne.layers.dropout(network, p=drop_hidden)
    return lasagne.layers.DenseLayer(network, 10, nonlinearity=lasagne.nonlinearities.softmax)


def build_cnn(input_var=None):
    """Two stages of a 5x5 convolution with 32 filters and 2x2 max pooling, a dense layer of
    256 rectified units with 50% dropout before and after, and a 10-way softmax."""
    network = lasagne.layers.InputLayer(shape=(None, 1, 28, 28), input_var=input_var)
    network = lasagne.layers.Conv2DLayer(network, num_filters=32, filter_size=(5, 5),
                                         nonlinearity=lasagne.nonlinearities.rectify,
                                         W=lasagne.init.GlorotUniform())
    network = lasagne.layers.MaxPool2DLayer(network, pool_size=(2, 2))
    network = lasagne.layers.Conv2DLayer(network, num_filters=32, filter_size=(5, 5),
                                         nonlinearity=lasagne.nonlinearities.rectify)
    network = lasagne.layers.MaxPool2DLayer(network, pool_size=(2, 2))
    network = lasagne.layers.DenseLayer(lasagne.layers.dropout(network, p=.5), num_units=256,
                                        nonlinearity=lasagne.nonlinearities.rectify)
    return lasagne.layers.DenseLayer(lasagne.layers.dropout(network, p=.5), num_units=10,
                                     nonlinearity=lasagne.nonlinearities.softmax)


# ############################# Batch iterator ###############################

def iterate_minibatches(inputs, targets, batchsize, shuffle=False):
    """Mini-batches of ``batchsize`` examples (a last, smaller batch is left out)."""
    assert len(inputs) == len(targets)
    indices = np.random.permutation(len(inputs)) if shuffle else np.arange(len(inputs))
    for start in range(0, len(inputs) - batchsize + 1, batchsize):
        excerpt = indices[start:start + batchsize]
        yield inputs[excerpt], targets[excerpt]


# ############################## Main program ################################

def parse_model(model):
    """``model`` as ``(name, keyword arguments of its builder)``; ValueError if unknown."""
    if model in ("mlp", "cnn"):
        return model, {}
    if model == "custom_mlp":
        return model, {}
    if model.startswith("custom_mlp:"):
        try:
            depth, width, drop_in, drop_hid = model.split(":", 1)[1].split(",")
            return "custom_mlp", {"depth": int(depth), "width": int(width),
                                  "drop_input": float(drop_in), "drop_hidden": float(drop_hid)}
        except ValueError:
            pass
        raise ValueError(f"custom_mlp takes DEPTH,WIDTH,DROP_IN,DROP_HID, got {model!r}")
    raise ValueError(f"unrecognized model type {model!r}: expected mlp, "
                     "custom_mlp[:DEPTH,WIDTH,DROP_IN,DROP_HID] or cnn")


def main(model="mlp", num_epochs=500, data_dir=".", val_size=10000, batch_size=500):
    """Train ``model`` for ``num_epochs`` and report its test loss and accuracy.

    Returns
    -------
    dict
        ``test_loss``, ``test_accuracy``, the last ``val_accuracy`` and the ``epoch_times``.
    """
    name, options = parse_model(model)
    print("Loading data...")
    X_train, y_train, X_val, y_val, X_test, y_test = load_dataset(data_dir, val_size)

    input_var = pt.tensor4("inputs")
    target_var = pt.ivector("targets")

    print("Building model and compiling functions...")
    if name == "mlp":
        network = build_mlp(input_var)
    elif name == "custom_mlp":
        network = build_custom_mlp(input_var, **options)
    else:
        network = build_cnn(input_var)

    # training: cross-entropy on the noisy (dropout) output, Nesterov momentum SGD
    prediction = lasagne.layers.get_output(network)
    loss = lasagne.objectives.categorical_crossentropy(prediction, target_var).mean()
    params = lasagne.layers.get_all_params(network, trainable=True)
    updates = lasagne.updates.nesterov_momentum(loss, params, learning_rate=0.01,
                                                momentum=0.9)

    # evaluation: the deterministic output (dropout off)
    test_prediction = lasagne.layers.get_output(network, deterministic=True)
    test_loss = lasagne.objectives.categorical_crossentropy(test_prediction,
                                                            target_var).mean()
    test_acc = pt.mean(pt.eq(pt.argmax(test_prediction, axis=1), target_var),
                       dtype=pytensor.config.floatX)

    train_fn = pytensor.function([input_var, target_var], loss, updates=updates)
    val_fn = pytensor.function([input_var, target_var], [test_loss, test_acc])

    def evaluate(X, y):
        err = acc = 0.0
        batches = 0
        for inputs, targets in iterate_minibatches(X, y, batch_size, shuffle=False):
            e, a = val_fn(inputs, targets.astype("int32"))
            err, acc, batches = err + e, acc + a, batches + 1
        return err / max(batches, 1), acc / max(batches, 1)

    print("Starting training...")
    epoch_times = []
    val_acc = None
    for epoch in range(num_epochs):
        train_err = 0.0
        train_batches = 0
        start_time = time.time()
        for inputs, targets in iterate_minibatches(X_train, y_train, batch_size, shuffle=True):
            train_err += train_fn(inputs, targets.astype("int32"))
            train_batches += 1
        if not np.isfinite(train_err):
            raise FloatingPointError(f"the training loss is {train_err} at epoch {epoch + 1}")
        val_err, val_acc = evaluate(X_val, y_val)
        epoch_times.append(time.time() - start_time)
        print(f"Epoch {epoch + 1} of {num_epochs} took {epoch_times[-1]:.3f}s")
        print(f"  training loss:\t\t{train_err / max(train_batches, 1):.6f}")
        print(f"  validation loss:\t\t{val_err:.6f}")
        print(f"  validation accuracy:\t\t{val_acc * 100:.2f} %")

    test_err, test_accuracy = evaluate(X_test, y_test)
    print("Final results:")
    print(f"  test loss:\t\t\t{test_err:.6f}")
    print(f"  test accuracy:\t\t{test_accuracy * 100:.2f} %")
    return {"test_loss": test_err, "test_accuracy": test_accuracy, "val_accuracy": val_acc,
            "epoch_times": epoch_times}


def build_parser():
    parser = argparse.ArgumentParser(
        description="Trains a neural network on MNIST using ntm.lasagne.")
    parser.add_argument("model", nargs="?", default="mlp",
                        help="'mlp' for a simple multi-layer perceptron (default), "
                             "'custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID' for one of the given "
                             "depth, width and dropout rates, 'cnn' for a convolutional network")
    parser.add_argument("epochs", nargs="?", type=int, default=500,
                        help="the number of training epochs (default: 500)")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", "."),
                        help="where the four MNIST .gz files are, or are downloaded to "
                             "(default: $MNIST_DATA_DIR or the current directory)")
    parser.add_argument("--val-size", type=int, default=10000,
                        help="training examples kept apart for validation (default: 10000)")
    parser.add_argument("--batch-size", type=int, default=500,
                        help="examples per mini-batch (default: 500)")
    return parser


def cli(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        parse_model(args.model)
    except ValueError as exc:
        parser.error(str(exc))
    if args.epochs < 1:
        parser.error(f"epochs must be a positive int, got {args.epochs}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be a positive int, got {args.batch_size}")
    if args.val_size < 1:
        parser.error(f"--val-size must be a positive int, got {args.val_size}")
    try:
        return main(args.model, args.epochs, args.data_dir, args.val_size, args.batch_size)
    except (OSError, ValueError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


if __name__ == "__main__":
    cli()
