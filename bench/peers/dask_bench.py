#!/usr/bin/python3
"""The SpareCycles system benchmarks' workloads, run on Dask distributed (Debian's
python3-distributed) on this machine, for bench/run_all.sh.

Every figure is printed as one JSON line on stdout, in the same format as the C++ tools in
bench/system (figure, case, value, unit, baseline, baseline_name, ratio, ...), with
"system": "dask". Everything listens on 127.0.0.1 with OS-chosen ports.

Workloads (2 workers x 1 thread, processes=True, like SpareCycles' 2 workers x 1 core):
  trivial tasks/s         client.map of a no-op; baseline multiprocessing.Pool(2), one task per
                          message (imap_unordered, chunksize=1), same run
  round trip p50/p99      client.submit(no-op).result(); baseline Pool(2).apply round trip
  primes below 2e8 in 200 chunks
                          a pure-Python segmented sieve (bytearray slicing) -- so this measures
                          Python kernels; the comparable figure is the parallel efficiency
                          T(one local process, same kernel, same chunks) / (2 x T(dask))
  kill one of 2 workers   400 tasks of 20 ms busy-wait, kill -9 one worker process halfway;
                          extra = T(with kill) - ideal, ideal = t_kill + (1 - t_kill/T_base) * 2 T_base
"""
import argparse
import json
import math
import multiprocessing
import os
import signal
import sys
import time

import dask
from dask.distributed import Client, LocalCluster, wait

ARGS = None


def emit(figure, case, value, unit, baseline, baseline_name, goal="", higher_is_better=True, **extra):
    ratio = value / baseline if baseline else float("nan")
    rec = dict(system="dask", figure=figure, case=case, value=value, unit=unit, baseline=baseline,
               baseline_name=baseline_name, ratio=ratio, higher_is_better=higher_is_better, goal=goal,
               quick=ARGS.quick, command="/usr/bin/python3 bench/peers/dask_bench.py" + (" --quick" if ARGS.quick else ""),
               dask_version=dask.__version__)
    rec.update(extra)
    print(json.dumps(rec), flush=True)
    print(f"  dask {figure} [{case}]: {value:.6g} {unit}   baseline ({baseline_name}): {baseline:.6g}",
          file=sys.stderr, flush=True)


def noop(x):
    return x


def spin(i, ms):
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        pass
    return i


def small_primes(limit):
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for p in range(2, int(limit ** 0.5) + 1):
        if sieve[p]:
            sieve[p * p::p] = bytes(len(range(p * p, limit + 1, p)))
    return [p for p in range(2, limit + 1) if sieve[p]]


def count_primes(lo, hi):
    """Primes in [lo, hi): segmented sieve of Eratosthenes with bytearray slice assignment."""
    if hi <= 2:
        return 0
    lo = max(lo, 2)
    seg = bytearray([1]) * (hi - lo)
    for p in small_primes(math.isqrt(hi - 1)):
        start = max(p * p, (lo + p - 1) // p * p)
        if start >= hi:
            continue
        seg[start - lo::p] = bytes(len(range(start - lo, hi - lo, p)))
    return seg.count(1)


def chunks(n, parts):
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


def count_chunk(bounds):
    return count_primes(*bounds)


def new_cluster():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, scheduler_port=0, worker_dashboard_address=None)
    return cluster, Client(cluster)


def bench_trivial_and_latency(client, pool):
    n = 200 if ARGS.quick else 5000
    client.gather(client.map(noop, range(100), pure=False))  # warm-up
    best = 0.0
    for _ in range(1 if ARGS.quick else 3):
        t0 = time.perf_counter()
        futures = client.map(noop, range(n), pure=False)
        wait(futures)
        best = max(best, n / (time.perf_counter() - t0))
        del futures
    # One task per message, like Dask and SpareCycles (Pool.map's default chunking would batch).
    pn = 2000 if ARGS.quick else 50000
    list(pool.imap_unordered(noop, range(1000), chunksize=1))
    t0 = time.perf_counter()
    list(pool.imap_unordered(noop, range(pn), chunksize=1))
    pool_rate = pn / (time.perf_counter() - t0)
    emit("trivial_units_per_s", "replicas=1, memory store, 2 workers", best, "tasks/s", pool_rate,
         "multiprocessing.Pool(2).imap_unordered(chunksize=1), same run")

    iters = 20 if ARGS.quick else 500
    for i in range(5):
        client.submit(noop, i, pure=False).result()
    rtts = []
    for i in range(iters):
        t0 = time.perf_counter()
        client.submit(noop, i, pure=False).result()
        rtts.append(time.perf_counter() - t0)
    prtts = []
    for i in range(iters):
        t0 = time.perf_counter()
        pool.apply(noop, (i,))
        prtts.append(time.perf_counter() - t0)

    def pct(v, p):
        v = sorted(v)
        idx = p * (len(v) - 1)
        lo = int(idx)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (idx - lo)

    for p, name in ((0.5, "p50"), (0.99, "p99")):
        emit("one_unit_job_round_trip_ms", name, pct(rtts, p) * 1e3, "ms", pct(prtts, p) * 1e3,
             "multiprocessing.Pool(2).apply, same percentile", higher_is_better=False)


def bench_primes(client):
    n = int(2e7 if ARGS.quick else 2e8)
    parts = 200
    cs = chunks(n, parts)
    t0 = time.perf_counter()
    serial = sum(count_chunk(c) for c in cs)
    t_serial = time.perf_counter() - t0
    best = float("inf")
    for _ in range(1 if ARGS.quick else 2):
        t0 = time.perf_counter()
        total = sum(client.gather(client.map(count_chunk, cs, pure=False)))
        best = min(best, time.perf_counter() - t0)
        assert total == serial, (total, serial)
    emit("cpu_job_efficiency", f"primes below {n} in 200 units (the Dask job), 2 workers x 1 core",
         t_serial / (2 * best), "T(local 1 process)/(2 x T(job))", 1.0,
         "one local Python process, same kernel and chunks (1 core: CPython has one)",
         job_s=best, local_s=t_serial, count=total, kernel="pure Python segmented sieve")


def bench_kill():
    units = 40 if ARGS.quick else 400
    ms = 20

    def run(kill_after):
        cluster, client = new_cluster()
        try:
            client.gather(client.map(spin, range(4), ms=1, pure=False))
            pids = client.run(os.getpid)
            victim = sorted(pids.values())[-1]
            t0 = time.perf_counter()
            futures = client.map(spin, range(units), ms=ms, pure=False)
            kill_at = 0.0
            if kill_after > 0:
                time.sleep(kill_after)
                kill_at = time.perf_counter() - t0
                os.kill(victim, signal.SIGKILL)
            results = client.gather(futures)
            total = time.perf_counter() - t0
            assert sorted(results) == list(range(units))
            return total, kill_at
        finally:
            client.close()
            cluster.close()

    base, _ = run(0)
    total, kill_at = run(base / 2)
    ideal = kill_at + (1 - kill_at / base) * 2 * base
    emit("extra_time_after_worker_kill_s", f"{units} x {ms} ms units (nanny restarts the worker)",
         total - ideal, "s", ms / 1000 + 0.1, "goal bound: lost work (one unit) + 0.1 s",
         goal="<= lost work + 0.1 s", higher_is_better=False, job_s_no_kill=base,
         job_s_with_kill=total, kill_at_s=kill_at, ideal_s=ideal)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tiny version (seconds)")
    ARGS = ap.parse_args()
    dask.config.set({"distributed.worker.daemon": False})
    print(f"dask distributed {dask.__version__}, {os.cpu_count()} cores", file=sys.stderr)
    cluster, client = new_cluster()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        bench_trivial_and_latency(client, pool)
    bench_primes(client)
    client.close()
    cluster.close()
    bench_kill()


if __name__ == "__main__":
    main()
