"""``import ntm`` (and what the examples import) changes nothing in PyTensor for anyone else:
its configuration, its functions and classes, its rewrite database, and how it compiles a
graph that contains no NTM."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the library and the examples import.
IMPORTS = ["ntm", "ntm.layers", "ntm.heads", "ntm.controllers", "ntm.memory", "ntm.updates",
           "ntm.lasagne", "ntm.lasagne.layers", "ntm.lasagne.updates", "ntm.accel",
           "ntm.accel.rewrites", "ntm.accel.blas", "ntm.accel.modes", "utils.training",
           "utils.generators", "utils.visualization"]

# Runs in a fresh interpreter: snapshot PyTensor, import the project, snapshot again.
SCRIPT = r'''
import importlib, json, os, sys, types
import numpy as np
for name in json.loads(sys.argv[1]):  # PyTensor's modules the project's import would load
    importlib.import_module(name)
import pytensor
import pytensor.tensor as pt
from pytensor.compile import optdb


def objects():
    """id of every function and class of PyTensor's modules, and of every method of those
    classes, by qualified name."""
    found = {}
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("pytensor") or not isinstance(module, types.ModuleType):
            continue
        for name, value in list(vars(module).items()):
            if isinstance(value, (types.FunctionType, type)):
                found[f"{module_name}.{name}"] = id(value)
            if isinstance(value, type) and value.__module__ == module_name:
                for attribute, member in list(vars(value).items()):
                    found[f"{module_name}.{name}.{attribute}"] = id(member)
    return found


def configuration():
    settings = {}
    for name in dir(pytensor.config):
        if name.startswith("_"):
            continue
        try:
            value = getattr(pytensor.config, name)
        except Exception as error:  # a setting that cannot be read here
            value = f"unreadable: {type(error).__name__}"
        if not callable(value):
            settings[name] = str(value)
    return settings


def rewrites(db, prefix="optdb"):
    names = {}
    for name, rewriter in getattr(db, "__db__", {}).items():
        names[f"{prefix}.{name}"] = sorted(str(id(r)) for r in rewriter)
    for name, position in getattr(db, "__position__", {}).items():
        names[f"{prefix}.{name}@"] = [str(position)]
    for sub in ("canonicalize", "specialize", "stabilize", "uncanonicalize"):
        if prefix == "optdb" and sub in db.__db__:
            names.update(rewrites(db[sub], f"optdb.{sub}"))
    return names


def compiled():
    """A graph with no NTM (a scan with a softmax, a matrix product, its gradient), compiled
    in the default mode: its operations and its results."""
    x = pt.matrix("x")
    w = pytensor.shared(np.linspace(-1, 1, 12).reshape(3, 4).astype(pytensor.config.floatX))
    h = pytensor.scan(lambda x_t, h: pt.special.softmax(pt.tanh(x_t @ w) + h),
                      sequences=[x], outputs_info=[pt.zeros(4)], return_updates=False)
    cost = (h ** 2).sum()
    function = pytensor.function([x], [cost, pytensor.grad(cost, w)])
    operations = [str(node.op) for node in function.maker.fgraph.toposort()]
    values = [np.asarray(v).tolist() for v in function(np.ones((5, 3), pytensor.config.floatX))]
    return operations, values


# PyTensor fills some caches of its own at its first compilation (the compiler's flags, the
# rewrite database's tags): compile once before looking.
warm = compiled()
before = dict(objects=objects(), configuration=configuration(), rewrites=rewrites(optdb),
              environment=dict(os.environ), compiled=compiled())
assert before["compiled"] == warm
for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
after = dict(objects=objects(), configuration=configuration(), rewrites=rewrites(optdb),
             environment=dict(os.environ), compiled=compiled())
print(json.dumps(dict(before=before, after=after)))
'''


def _python(code, *arguments, environment=None):
    result = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True,
                            text=True, cwd=ROOT, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def snapshots():
    environment = {**os.environ, "PYTHONPATH": ROOT}
    # the PyTensor modules that importing the project loads, imported before the snapshot so
    # that the comparison covers them
    loaded = json.loads(_python(
        "import importlib, json, sys\n"
        f"for name in {IMPORTS!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pytensor'))))",
        environment=environment))
    return json.loads(_python(SCRIPT, json.dumps(loaded), json.dumps(IMPORTS),
                              environment=environment))


def test_pytensor_functions_and_classes_are_the_same_objects(snapshots):
    before, after = snapshots["before"]["objects"], snapshots["after"]["objects"]
    assert len(before) > 1000  # PyTensor's modules were seen
    changed = sorted(name for name, identity in before.items() if after.get(name) != identity)
    # PyTensor fills this cache of its own when it first compiles a module not in its cache
    lazily_set = {"pytensor.link.c.cmodule.GCC_compiler.march_flags"}
    assert [name for name in changed if name not in lazily_set] == []


def test_the_configuration_is_unchanged(snapshots):
    before, after = snapshots["before"]["configuration"], snapshots["after"]["configuration"]
    assert "blas__ldflags" in before and "allow_gc" in before
    assert {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v} == {}


def test_no_rewrite_is_registered_in_pytensors_database(snapshots):
    assert snapshots["before"]["rewrites"] == snapshots["after"]["rewrites"]


def test_a_graph_without_ntm_compiles_to_the_same_operations_and_values(snapshots):
    operations, values = snapshots["before"]["compiled"]
    assert any("Scan" in op for op in operations)
    assert snapshots["after"]["compiled"] == [operations, values]


def test_importing_the_library_sets_no_environment_variable():
    environment = {**os.environ, "PYTHONPATH": ROOT}
    environment.pop("GOMP_SPINCOUNT", None)
    code = ("import json, os\nbefore = dict(os.environ)\n"
            "import ntm, ntm.layers, ntm.accel, ntm.lasagne\n"
            "print(json.dumps([before, dict(os.environ)]))")
    before, after = json.loads(_python(code, environment=environment))
    assert before == after
