# Shared fixtures of the Python package's tests: a local client, a real coordinator + worker on
# 127.0.0.1 with OS-chosen ports (ended by pid), and helpers. Run through ctest (tests/python/
# CMakeLists.txt sets PYTHONPATH and the binaries' paths).
import os
import pathlib
import signal
import subprocess
import time

import pytest

import sparecycles


def count_primes_below(n):
    """Plain sieve: the reference the coordinator's answer is compared with."""
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\0\0"
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytes(len(range(i * i, n, i)))
    return sum(sieve)


@pytest.fixture(scope="module")
def local():
    client = sparecycles.Client.local(cores=2)
    yield client
    client.close()


def _binary(var):
    path = os.environ.get(var)
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"SKIP: {var} is not set to a built binary (run through ctest)")
    return path


class Cluster:
    """sparecycles-coordinator + sparecycles-worker processes, ended by pid."""

    def __init__(self, tmp: pathlib.Path, workers: int = 1):
        self.tmp = tmp
        self.procs = []
        eps = tmp / "endpoints"
        self.coordinator = self._start(
            "coordinator",
            [_binary("SPARECYCLES_COORDINATOR_BIN"), "--peers", "tcp://127.0.0.1:*", "--clients",
             "tcp://127.0.0.1:*", "--endpoints-file", str(eps), "--pool", "cluster",
             "--heartbeat", "1s", "--peer-timeout", "10s", "--log-level", "warn"])
        deadline = time.monotonic() + 20
        while not eps.exists():
            if time.monotonic() > deadline or self.coordinator.poll() is not None:
                raise RuntimeError("the coordinator did not start:\n" + self.logs())
            time.sleep(0.02)
        fields = dict(line.split() for line in eps.read_text().splitlines() if line.strip())
        self.peer_endpoint, self.client_endpoint = fields["peers"], fields["clients"]
        for i in range(workers):
            self.add_worker(f"worker{i}")

    def add_worker(self, name):
        return self._start(name, [
            _binary("SPARECYCLES_WORKER_BIN"), "--coordinator", self.peer_endpoint, "--cores", "2",
            "--state-dir", str(self.tmp / name), "--calibrate", "5ms", "--pause-above", "off",
            "--throttle", "off", "--priority", "normal", "--log-level", "warn"])

    def _start(self, name, argv):
        log = open(self.tmp / f"{name}.log", "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append((name, p))
        return p

    def wait_for_peers(self, client, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(client.peers()) >= n:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{n} peer(s) did not register:\n" + self.logs())

    def logs(self):
        return "\n".join(f"--- {n}\n" + (self.tmp / f"{n}.log").read_text(errors="replace")
                         for n, _ in self.procs if (self.tmp / f"{n}.log").exists())

    def stop(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture
def remote(cluster):
    client = sparecycles.Client.connect(cluster.client_endpoint, timeout=10)
    cluster.wait_for_peers(client, 1)
    yield client
    client.close()
