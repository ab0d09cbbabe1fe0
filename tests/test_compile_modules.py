"""benchmarks/compile_modules.py: a compile directory's C modules and their compile times, by
op class, read from the files' times."""
import os

import pytest

from benchmarks import compile_modules


def write_module(directory, name, op_classes, written, compiled):
    module = directory / name
    module.mkdir(parents=True)
    source = module / "mod.cpp"
    source.write_text("".join(f"// Op class {op}\n" for op in op_classes) + "int f;\n")
    library = module / f"{name}.so"
    library.write_bytes(b"")
    os.utime(source, (written, written))
    os.utime(library, (compiled, compiled))


def test_modules_are_read_in_the_order_written_with_their_compile_time(tmp_path):
    compiledir = tmp_path / "compiledir_Linux-x86_64"
    write_module(compiledir, "b", ["Subtensor"], 1000.0, 1000.5)
    write_module(compiledir, "a", ["Elemwise"], 990.0, 992.0)
    write_module(compiledir, "c", ["Scan", "Elemwise", "Elemwise"], 1010.0, 1013.0)
    (compiledir / "unfinished").mkdir()
    (compiledir / "unfinished" / "mod.cpp").write_text("// Op class Join\n")
    assert compile_modules.module_times(str(tmp_path)) == [
        ("Elemwise", 2.0), ("Subtensor", 0.5), ("Elemwise,Scan", 3.0)]


def test_the_table_sums_by_op_class(tmp_path, capsys):
    write_module(tmp_path, "a", ["Elemwise"], 0.0, 2.0)
    write_module(tmp_path, "b", ["Elemwise"], 10.0, 11.5)
    write_module(tmp_path, "c", ["Sum"], 20.0, 20.25)
    assert compile_modules.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == ["| Elemwise | 2 | 3.5 |", "| Sum | 1 | 0.2 |", "| all | 3 | 3.8 |"]


@pytest.mark.parametrize("make", [False, True])
def test_a_directory_without_modules_is_refused_in_one_line(tmp_path, make, capsys):
    path = tmp_path / ("empty" if make else "missing")
    if make:
        path.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        compile_modules.main([str(path)])
    assert exit_info.value.code == 2
    assert "directory:" in capsys.readouterr().err.splitlines()[-1]
