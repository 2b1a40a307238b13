# Task packages from Python: the example command package (a Python script run by Debian's
# /usr/bin/python3 over a sweep) on a local client, checked against computing the answers here;
# a command package's files through Client.submit(package=...); refusals as exceptions.
import os
import pathlib
import subprocess
import sys

import pytest

import sparecycles

SOURCE = pathlib.Path(os.environ.get("SPARECYCLES_SOURCE_DIR", pathlib.Path(__file__).parents[2]))


def _cli():
    cli = os.environ.get("SPARECYCLES_CLI")
    if not cli or not os.access(cli, os.X_OK):
        pytest.skip("SKIP: SPARECYCLES_CLI is not set to the built sparecycles CLI (run through ctest)")
    return cli


def test_the_command_package_example_runs_a_python_script_over_a_sweep(tmp_path):
    env = dict(os.environ, SPARECYCLES_CLI=_cli(), SPARECYCLES_EXAMPLE_DIR=str(tmp_path))
    p = subprocess.run([sys.executable, str(SOURCE / "examples" / "python" / "command_package.py")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [l for l in p.stdout.splitlines() if l.startswith("unit-")]
    expected = [f"unit-{i:06d}/out.txt {n} {n * n} {sum(int(d) for d in str(2 ** n))}"
                for i, n in enumerate(range(1, 25))]
    assert lines == expected
    assert "24 units, 24 files" in p.stdout
    # The same bytes were written as a directory.
    for i, n in enumerate(range(1, 25)):
        out = (tmp_path / "outputs" / f"unit-{i:06d}" / "out.txt").read_text()
        assert out == f"{n} {n * n} {sum(int(d) for d in str(2 ** n))}\n"


def _build(cli, root, manifest, files):
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "package.manifest").write_text("\n".join(manifest) + "\n")
    pkg = root.parent / (root.name + ".scpkg")
    subprocess.run([cli, "package", "build", str(root), "-o", str(pkg)], check=True,
                   capture_output=True)
    return pkg


def test_a_command_package_over_input_files_and_its_errors(tmp_path, local):
    cli = _cli()
    pkg = _build(cli, tmp_path / "upper", [
        "name = upper", "version = 1", "kind = command", "entry = /usr/bin/python3",
        "require = /usr/bin/python3", "arg = {pkg}/upper.py", "arg = {input}", "split = files",
        "stdout = out.txt", "expected-time = 1s"],
        {"upper.py": "import sys\nprint(open(sys.argv[1]).read().upper(), end='')\n"})
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    words = {f"w{i:03d}.txt": f"word number {i}\n" for i in range(12)}
    for name, text in words.items():
        (inputs / name).write_text(text)
    result = local.submit(package=pkg, input_dir=inputs).result(timeout=300, progress=False)
    assert result.files == {f"unit-{i:06d}/out.txt": text.upper().encode()
                            for i, text in enumerate(words[k] for k in sorted(words))}
    assert result.answer == {"units": 12, "files": 12}
    out = result.save_files(tmp_path / "out")
    assert (pathlib.Path(out) / "unit-000003" / "out.txt").read_text() == "WORD NUMBER 3\n"

    # Mistakes are refused before anything runs, as exceptions named after their status codes.
    with pytest.raises(sparecycles.InvalidArgument, match="input directory"):
        local.submit(package=pkg)
    with pytest.raises(sparecycles.InvalidArgument, match="takes no parameters"):
        local.submit(package=pkg, input_dir=inputs, colour="red")
    with pytest.raises(sparecycles.InvalidArgument):
        local.submit("primes", package=pkg)
    with pytest.raises(sparecycles.SpareCyclesError, match="nope.scpkg"):
        local.submit(package=tmp_path / "nope.scpkg")
