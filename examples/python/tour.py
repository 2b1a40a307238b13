# %% [markdown]
# # A tour of SpareCycles from Python
#
# A notebook-style script: run it with `python3 tour.py`, or open it in Jupyter / VS Code, where
# each `# %%` starts a cell. It needs the `sparecycles` package (docs/python.md, section 1) and
# writes one PNG into the current directory.
#
# Set SPARECYCLES_ENDPOINT=tcp://host:7738 to use a running coordinator instead of a local one.

# %%
import os
import time

import sparecycles

endpoint = os.environ.get("SPARECYCLES_ENDPOINT")
client = sparecycles.Client.connect(endpoint) if endpoint else sparecycles.Client.local()
print(client)
print(client.peers())

# %% [markdown]
# ## One job: count the primes below 10⁸
# `progress=None` draws a bar in a notebook or a terminal when tqdm is installed.

# %%
t0 = time.perf_counter()
job = client.submit("primes", to=10**8, name="primes below 1e8")
result = job.result(timeout=600)
print(result.answer, f"in {time.perf_counter() - t0:.2f} s")
print(result.info)

# %% [markdown]
# ## An image: the Mandelbrot set
# The PNG is written where the CLI would write it (mandelbrot-JOB.png); in Jupyter the result
# displays itself.

# %%
picture = client.submit("mandelbrot", width=640, height=400, max_iter=300).result(timeout=600)
print(picture)
picture

# %% [markdown]
# ## Watching progress with a callback
# Callbacks run on a background thread and may call back into the client.

# %%
updates = []
spin = client.submit("spin", units=8, ms=100, unit_count=8)
spin.on_progress(lambda info: updates.append((info.units_done, info.state)))
spin.result(timeout=600, progress=False)
time.sleep(0.1)
print(updates)

# %% [markdown]
# ## Many jobs: a Monte Carlo estimate of π from 12 seeds, collected as they finish

# %%
jobs = [client.submit("pi", samples=2_000_000, seed=seed) for seed in range(12)]
estimates = [job.result().answer["estimate"] for job in sparecycles.as_completed(jobs, timeout=600)]
print(f"π ≈ {sum(estimates) / len(estimates):.5f} from {len(estimates)} jobs")

# %% [markdown]
# ## Errors are exceptions named after the status codes

# %%
try:
    client.submit("primes", to="lots")
except sparecycles.InvalidArgument as e:
    print("InvalidArgument:", e)

slow = client.submit("spin", units=2, ms=60_000)
try:
    slow.result(timeout=0.5)
except sparecycles.DeadlineExceeded as e:
    print("DeadlineExceeded:", e)
slow.cancel()
try:
    slow.result(timeout=60)
except sparecycles.Cancelled as e:
    print("Cancelled:", e)

# %%
print(client.jobs()[-3:])
client.close()
