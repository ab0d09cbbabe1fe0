"""ntm.accel.modes and the modes ntm.accel builds: a virtual machine that keeps intermediate
storage gives the same results; ntm.accel.mode and ntm.accel.accelerated, the switch."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode

import ntm.accel
from ntm.accel.fused import FusedImplementation
from ntm.accel.modes import describe, keep_storage
from ntm.implementation import PLAIN, active
from ntm.lasagne import layers
from tests.small_ntm import binary_sequences, small_ntm


def test_keep_storage_turns_off_the_virtual_machines_garbage_collection():
    for name in ("CVM", "FAST_COMPILE"):
        assert get_mode(name).linker.allow_gc  # PyTensor's default, which this changes
        mode = keep_storage(name)
        assert mode.linker.allow_gc is False
        assert mode.linker.use_cloop == get_mode(name).linker.use_cloop
        assert mode.provided_optimizer is get_mode(name).provided_optimizer
    mode = keep_storage("CVM")
    assert keep_storage(mode) is mode  # nothing left to change


def test_modes_without_a_virtual_machine_are_returned_unchanged():
    pytest.importorskip("numba")
    assert keep_storage("NUMBA") is get_mode("NUMBA")


def test_bad_mode_fails_early():
    with pytest.raises(TypeError, match="keep_storage: mode must be a PyTensor mode"):
        keep_storage(3)


def test_describe_is_stable_and_tells_the_linker_settings_apart():
    assert describe("CVM") == "CVM"
    assert describe(keep_storage("CVM")) == describe(keep_storage("CVM"))
    assert describe(keep_storage("CVM")) != describe(get_mode("CVM"))
    assert "0x" not in describe(keep_storage("CVM"))  # no object addresses


def test_an_ntm_gradient_with_kept_storage_matches_the_default_over_calls_of_changing_shape():
    """Reused buffers must never leak values between calls: batch sizes and lengths change
    from call to call, and each result equals a fresh function's in PyTensor's default mode."""
    l_input, l_ntm = small_ntm()
    output = layers.get_output(l_ntm)
    params = layers.get_all_params(l_ntm, trainable=True)
    cost = pt.sum(output ** 2)
    grads = pytensor.grad(cost, params)
    kept = pytensor.function([l_input.input_var], [cost] + grads, mode=keep_storage("CVM"))
    default = pytensor.function([l_input.input_var], [cost] + grads, mode="CVM")
    for shape, seed in (((2, 6, 3), 0), ((3, 4, 3), 1), ((2, 6, 3), 2), ((1, 9, 3), 3)):
        x = binary_sequences(shape, seed)
        for got, expected in zip(kept(x), default(x)):
            np.testing.assert_array_equal(got, expected)


def test_the_ntm_scans_step_keeps_its_storage_between_time_steps_and_calls():
    """Built and compiled accelerated, the steps of the NTM's forward and backward scans keep
    their storage from one time step to the next, and from one call to the next."""
    from pytensor.scan.op import Scan

    l_input, l_ntm = small_ntm()
    with ntm.accel.accelerated("CVM") as mode:
        output = layers.get_output(l_ntm)
        cost = pt.sum(output ** 2)
        grads = pytensor.grad(cost, layers.get_all_params(l_ntm, trainable=True))
        function = pytensor.function([l_input.input_var], grads, mode=mode)
    function(binary_sequences())
    scans = [node for node in function.maker.fgraph.toposort() if isinstance(node.op, Scan)]
    assert sorted(node.op.name for node in scans) == ["ntm_scan_fused", "ntm_scan_fused_grad"]
    for node in scans:
        assert node.op.fn.maker.linker.allow_gc is False
        inner = node.op.fn.maker.fgraph
        intermediates = [v for v in inner.variables if v.owner is not None
                         and v not in inner.outputs and v in node.op.fn.vm.storage_map]
        assert intermediates
        assert all(node.op.fn.vm.storage_map[v][0] is not None for v in intermediates)


def test_the_accelerated_mode_keeps_storage():
    """(Its rewrites: tests/accel/test_rewrites.py.)"""
    assert ntm.accel.backend_of("CVM") == "c" and ntm.accel.backend_of("NUMBA") == "numba"
    assert ntm.accel.mode("CVM").linker.allow_gc is False
    assert get_mode("CVM").linker.allow_gc  # PyTensor's own mode is not changed
    # a mode without compiled code is left as it is
    assert ntm.accel.backend_of("FAST_COMPILE") == "python"
    assert ntm.accel.mode("FAST_COMPILE") is get_mode("FAST_COMPILE")
    with pytest.raises(TypeError, match="mode: base must be a PyTensor mode"):
        ntm.accel.mode(3)


def test_the_switch_builds_with_the_fused_implementation_only_inside():
    allow_gc = pytensor.config.allow_gc
    assert active() is PLAIN
    with ntm.accel.accelerated("CVM") as mode:
        assert isinstance(active(), FusedImplementation)
        assert pytensor.config.allow_gc is False  # scans linked here keep their storage
        assert mode.linker.allow_gc is False
        assert describe(mode) == describe(ntm.accel.mode("CVM"))
    assert active() is PLAIN
    assert pytensor.config.allow_gc == allow_gc


def test_the_switch_warns_and_builds_the_plain_model_where_the_fused_ops_cannot_serve(
        monkeypatch):
    monkeypatch.setattr(pytensor, "__version__", "2.9.0")  # not a release they are tested on
    with pytest.warns(RuntimeWarning, match="PyTensor 2.9.0 is not one of.*plain implementation"):
        with ntm.accel.accelerated("CVM") as mode:
            assert mode is get_mode("CVM")
            assert active() is PLAIN
    assert active() is PLAIN
