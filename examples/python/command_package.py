# %% [markdown]
# # Your own Python script on the peers: a command package
#
# A notebook-style script (`python3 command_package.py`, or cells in Jupyter / VS Code). It writes
# a small Python program, packs it into a command package (docs/packages.md) whose entry is
# Debian's `/usr/bin/python3` with the script shipped inside, runs it once per value of a
# parameter sweep on a local client (no keys needed), and prints every unit's output.
#
# Needs the `sparecycles` package (docs/python.md) and the `sparecycles` CLI, which builds the
# package: on PATH, or named by $SPARECYCLES_CLI. Everything is written under a temporary
# directory (or $SPARECYCLES_EXAMPLE_DIR, which is kept).

# %%
import os
import pathlib
import shutil
import subprocess
import tempfile

import sparecycles

work = pathlib.Path(os.environ.get("SPARECYCLES_EXAMPLE_DIR") or tempfile.mkdtemp(prefix="sc-cmdpkg-"))
work.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The program: one unit = one value of `n`
# It prints n, n² and the sum of the digits of 2ⁿ. Each run writes its answer to standard
# output, which the manifest captures as the unit's output file `out.txt`.

# %%
src = work / "powers"
src.mkdir(exist_ok=True)
(src / "powers.py").write_text(
    "import sys\n"
    "n = int(sys.argv[1])\n"
    "print(n, n * n, sum(int(d) for d in str(2 ** n)))\n")
(src / "package.manifest").write_text("\n".join([
    "name = powers",
    "version = 1.0",
    "summary = n, n squared and the digit sum of 2^n, one n per unit",
    "kind = command",
    "entry = /usr/bin/python3",      # Debian's interpreter, already on the peers...
    "require = /usr/bin/python3",    # ...which a peer must have to announce this package
    "arg = {pkg}/powers.py",         # the script shipped in the package
    "arg = {n}",
    "sweep = n 1..24",
    "stdout = out.txt",
    "expected-time = 1s",
    ""]))

# %% [markdown]
# ## Pack it
# `sparecycles package build` hashes every file into the manifest. A local client runs unsigned
# packages; for a real coordinator add `--key ~/.config/sparecycles/publisher.key`.

# %%
cli = os.environ.get("SPARECYCLES_CLI") or shutil.which("sparecycles")
if not cli:
    raise SystemExit("the sparecycles CLI is needed to build the package: put it on PATH or set SPARECYCLES_CLI")
pkg = work / "powers.scpkg"
subprocess.run([cli, "package", "build", str(src), "-o", str(pkg)], check=True)

# %% [markdown]
# ## Run the sweep: 24 units, one per n

# %%
with sparecycles.Client.local(cores=2) as client:
    job = client.submit(package=pkg)
    result = job.result(timeout=600, progress=False)
    print(result.summary)  # "24 units, 24 files, ... bytes"
    for name, data in result.files.items():
        print(name, data.decode().strip())
    print("written to", result.save_files(work / "outputs"))
