#!/usr/bin/python3
"""Round trip of a one-unit job from Python against the C++ SDK, same coordinator, same run.

Starts a sparecycles-coordinator (--pool cluster) and 2 sparecycles-workers (1 core each) on
127.0.0.1 with OS-chosen ports, like bench/system/latency.cpp. Then, in alternating rounds:
  python: client.submit("spin", units=1, ms=0).result() through the bindings
  c++:    the same Submit -> Wait loop through the C++ SDK (bench_python_cpp_round_trip)
Prints one JSON line per figure on stdout (the shape bench/system tools print) and prose on
stderr. Every process it starts is ended by its pid. Figures report; they never gate anything.

Usage: bench_python.py --cpp BIN [--coordinator BIN] [--worker BIN] [--iterations N] [--quick]
(the binaries default to $SPARECYCLES_COORDINATOR_BIN / $SPARECYCLES_WORKER_BIN).
"""
import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def percentile(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class Cluster:
    def __init__(self, coordinator, worker, tmp, workers=2):
        self.procs = []
        eps = tmp / "endpoints"
        self._start(tmp, "coordinator", [coordinator, "--peers", "tcp://127.0.0.1:*", "--clients",
                                          "tcp://127.0.0.1:*", "--endpoints-file", str(eps), "--pool",
                                          "cluster", "--log-level", "warn"])
        deadline = time.monotonic() + 20
        while not eps.exists():
            if time.monotonic() > deadline:
                raise SystemExit("bench_python: the coordinator did not start")
            time.sleep(0.02)
        fields = dict(line.split() for line in eps.read_text().splitlines() if line.strip())
        self.client_endpoint = fields["clients"]
        for i in range(workers):
            self._start(tmp, f"worker{i}", [worker, "--coordinator", fields["peers"], "--cores", "1",
                                            "--state-dir", str(tmp / f"worker{i}"), "--calibrate", "5ms",
                                            "--pause-above", "off", "--throttle", "off", "--priority",
                                            "normal", "--log-level", "warn"])

    def _start(self, tmp, name, argv):
        with open(tmp / f"{name}.log", "wb") as log:
            self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL))

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpp", required=True, help="the bench_python_cpp_round_trip binary")
    ap.add_argument("--coordinator", default=os.environ.get("SPARECYCLES_COORDINATOR_BIN"))
    ap.add_argument("--worker", default=os.environ.get("SPARECYCLES_WORKER_BIN"))
    ap.add_argument("--iterations", type=int, default=0, help="jobs per side (default 400; --quick 20)")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds (default 4)")
    ap.add_argument("--quick", action="store_true", help="a tiny run that only checks the tool works")
    args = ap.parse_args()
    if not args.coordinator or not args.worker:
        raise SystemExit("bench_python: give --coordinator and --worker (or set the environment)")
    n = args.iterations or (20 if args.quick else 400)
    per_round = max(1, n // args.rounds)

    import sparecycles
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench_python."))
    cluster = Cluster(args.coordinator, args.worker, tmp)
    try:
        client = sparecycles.Client.connect(cluster.client_endpoint)
        deadline = time.monotonic() + 30
        while len(client.peers()) < 2:
            if time.monotonic() > deadline:
                raise SystemExit("bench_python: the workers did not register")
            time.sleep(0.02)

        def one():
            t0 = time.perf_counter()
            r = client.submit("spin", units=1, ms=0, unit_count=1, replicas=1, quorum=1).result(timeout=60)
            t = time.perf_counter() - t0
            if r.info.state != "done":
                raise SystemExit(f"bench_python: job ended {r.info.state}")
            return t

        for _ in range(5):
            one()  # warm-up
        py, cpp = [], []
        print(f"one-unit job round trip, {per_round * args.rounds} jobs per side in {args.rounds} "
              f"alternating rounds", file=sys.stderr)
        for _ in range(args.rounds):
            py += [one() for _ in range(per_round)]
            out = subprocess.run([args.cpp, cluster.client_endpoint, str(per_round)], capture_output=True,
                                 text=True, timeout=600)
            if out.returncode != 0:
                raise SystemExit(f"bench_python: the C++ loop failed: {out.stderr}")
            cpp += [us / 1e6 for us in json.loads(out.stdout)["microseconds"]]
        client.close()
    finally:
        cluster.stop()
        for f in sorted(tmp.rglob("*"), reverse=True):
            f.unlink() if f.is_file() or f.is_symlink() else f.rmdir()
        tmp.rmdir()

    command = " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
    for case, q in (("p50", 0.5), ("p99", 0.99)):
        value, base = percentile(py, q) * 1e3, percentile(cpp, q) * 1e3
        fig = {"figure": "python_one_unit_job_round_trip_ms", "case": case, "value": round(value, 4),
               "unit": "ms", "baseline": round(base, 4),
               "baseline_name": "the same loop through the C++ SDK, same coordinator, same run",
               "ratio": round(value / base, 4), "higher_is_better": False, "goal": "",
               "quick": args.quick, "overhead_ms": round(value - base, 4), "jobs_per_side": len(py),
               "command": command}
        if case == "p50":
            fig["python_mean_ms"] = round(statistics.mean(py) * 1e3, 4)
            fig["cpp_mean_ms"] = round(statistics.mean(cpp) * 1e3, 4)
        print(json.dumps(fig))
        print(f"  {fig['figure']} [{case}]: {fig['value']} ms   baseline (C++ SDK): {fig['baseline']} ms"
              f"   ratio {fig['ratio']}   overhead {fig['overhead_ms']} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
