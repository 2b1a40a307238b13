# The wheel: built with `python3 -m build --wheel --no-isolation` (setuptools driving CMake on a
# copy of sdk/python), installed with `pip install --no-index` into a fresh venv of Debian's
# interpreter, and a job run from that venv, away from the source and build trees. This builds
# the project once more (Release, ccache when present), so it takes minutes; every step is bounded.
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

SOURCE = pathlib.Path(os.environ.get("SPARECYCLES_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def run(argv, timeout, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{argv[:4]} exited {p.returncode}:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def test_wheel_installs_into_a_fresh_venv_and_runs_a_job(tmp_path):
    for module in ("build", "setuptools", "wheel", "venv", "ensurepip"):
        if subprocess.run([PYTHON, "-c", f"import {module}"], capture_output=True).returncode != 0:
            pytest.skip(f"SKIP: {PYTHON} has no '{module}' module (scripts/install-deps.sh installs it)")
    src = tmp_path / "src"
    shutil.copytree(SOURCE / "sdk" / "python", src,
                    ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    env = dict(os.environ, SPARECYCLES_SOURCE_DIR=str(SOURCE))
    env.pop("PYTHONPATH", None)
    dist = tmp_path / "dist"
    run([PYTHON, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)],
        timeout=1500, env=env, cwd=tmp_path)
    wheels = list(dist.glob("sparecycles-*.whl"))
    assert len(wheels) == 1, wheels
    assert "linux" in wheels[0].name  # a platform wheel: it carries the compiled module

    venv = tmp_path / "venv"
    run([PYTHON, "-m", "venv", str(venv)], timeout=300, env=env)
    py = venv / "bin" / "python"
    run([str(py), "-m", "pip", "install", "--no-index", "--no-cache-dir", str(wheels[0])],
        timeout=300, env=env)

    work = tmp_path / "work"
    work.mkdir()
    script = (
        "import sparecycles, json, sys\n"
        "assert sparecycles.__file__.startswith(sys.prefix), sparecycles.__file__\n"
        "with sparecycles.Client.local(cores=1) as c:\n"
        "    r = c.submit('primes', to=100000).result(timeout=120, progress=True)\n"
        "    m = c.submit('mandelbrot', width=32, height=24).result(timeout=120)\n"
        "    print(json.dumps({'count': r.answer['count'], 'png': m.path}))\n")
    p = run([str(py), "-c", script], timeout=300, env=env, cwd=work)
    out = __import__("json").loads(p.stdout.strip().splitlines()[-1])
    sieve = bytearray([1]) * 100000
    sieve[0:2] = b"\0\0"
    for i in range(2, 317):
        if sieve[i]:
            sieve[i * i::i] = bytes(len(range(i * i, 100000, i)))
    assert out["count"] == sum(sieve)
    assert (work / out["png"]).read_bytes().startswith(b"\x89PNG")
