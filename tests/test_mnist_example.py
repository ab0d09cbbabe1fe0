"""examples/mnist.py (Lasagne's MNIST example on ntm.lasagne): its three models train on a tiny
data set written in MNIST's gzipped IDX format, and its command line rejects bad input."""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from examples import mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_idx(path, array, magic):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">i", magic))
        for size in array.shape:
            f.write(struct.pack(">i", size))
        f.write(array.astype(np.uint8).tobytes())


def digits(count, rng):
    """Images whose class is the row of a bright bar (easy to learn), with noise."""
    labels = rng.randint(0, 10, size=count)
    images = rng.randint(0, 60, size=(count, 28, 28))
    for image, label in zip(images, labels):
        image[2 + 2 * label:4 + 2 * label, 4:24] = 255
    return images, labels


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mnist")
    rng = np.random.RandomState(0)
    for prefix, count in (("train", 500), ("t10k", 100)):
        images, labels = digits(count, rng)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return str(directory)


def test_load_dataset_reads_the_idx_files(data_dir):
    X_train, y_train, X_val, y_val, X_test, y_test = mnist.load_dataset(data_dir, val_size=100)
    assert X_train.shape == (400, 1, 28, 28) and X_val.shape == (100, 1, 28, 28)
    assert X_test.shape == (100, 1, 28, 28) and y_test.shape == (100,)
    assert X_train.min() >= 0 and X_train.max() == 255 / 256
    # the bar of each image sits at its label's row
    rows = X_train[:, 0, :, 10].argmax(axis=1)
    np.testing.assert_array_equal(rows, 2 + 2 * y_train)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "custom_mlp:1,64,0.1,0.2", "cnn"])
def test_models_train_on_a_tiny_mnist(data_dir, model, capsys):
    """One epoch of each model (20 mini-batches of 20); slow because the test suite's
    FAST_COMPILE mode runs these graphs op by op in Python."""
    np.random.seed(1)
    result = mnist.main(model, num_epochs=1, data_dir=data_dir, val_size=100, batch_size=20)
    out = capsys.readouterr().out
    assert "Epoch 1 of 1 took" in out and "test accuracy" in out
    assert len(result["epoch_times"]) == 1
    print(f"{model}: test accuracy {result['test_accuracy']:.2f}, test loss "
          f"{result['test_loss']:.3f}, epoch {result['epoch_times'][0]:.1f} s")
    # better than chance (10%, a loss of log(10)) after one epoch on this easy data
    assert result["test_accuracy"] > 0.2, result
    assert result["test_loss"] < np.log(10), result


def test_command_line_errors(data_dir, tmp_path):
    script = os.path.join(ROOT, "examples", "mnist.py")

    def run(*args):
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
    bad = run("resnet", "1", "--data-dir", data_dir)
    assert bad.returncode == 2 and "unrecognized model type 'resnet'" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = run("custom_mlp:2,800", "1", "--data-dir", data_dir)
    assert bad.returncode == 2 and "DEPTH,WIDTH,DROP_IN,DROP_HID" in bad.stderr
    bad = run("mlp", "0", "--data-dir", data_dir)
    assert bad.returncode == 2 and "epochs" in bad.stderr
    for name in mnist.FILES.values():
        (tmp_path / name).write_bytes(gzip.compress(b"\x00" * 16))
    bad = run("mlp", "1", "--data-dir", str(tmp_path))
    assert bad.returncode == 2 and "not an IDX image file" in bad.stderr
    assert "Traceback" not in bad.stderr
