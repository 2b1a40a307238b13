# A remote client against real sparecycles-coordinator and sparecycles-worker processes on
# 127.0.0.1 (OS-chosen ports, read back from --endpoints-file; ended by pid in conftest.py).
import threading

import pytest

import sparecycles
from conftest import count_primes_below


def test_a_job_runs_on_the_remote_worker(remote):
    job = remote.submit("primes", to=300_000, replicas=1)
    r = job.result(timeout=120)
    assert r.answer["count"] == count_primes_below(300_000)
    assert r.info.units_done == r.info.units_total >= 1
    peers = remote.peers()
    assert len(peers) == 1 and peers[0].units_done >= 1 and peers[0].cores >= 1
    assert "remote" in repr(remote) and remote.endpoint.startswith("tcp://127.0.0.1:")


def test_another_client_follows_the_same_job(remote, cluster):
    job = remote.submit("spin", units=3, ms=200, unit_count=3)
    with sparecycles.Client.connect(cluster.client_endpoint) as second:
        followed = second.job(job.id)
        assert followed.id == job.id
        got = []
        ended = threading.Event()
        followed.on_progress(lambda i: (got.append(i), i.final and ended.set()))
        r = followed.result(timeout=120)
        assert r.info.state == "done" and r.answer == job.result(timeout=120).answer
        assert ended.wait(30) and got[-1].state == "done"
        assert job.id in {i.id for i in second.jobs()}


def test_remote_progress_callbacks(remote):
    seen = []
    ended = threading.Event()
    job = remote.submit("spin", units=6, ms=100, unit_count=6)
    job.on_progress(lambda i: (seen.append(i.units_done), i.final and ended.set()))
    job.result(timeout=120)
    assert ended.wait(30)
    assert seen == sorted(seen) and seen[-1] == 6


def test_remote_timeout_and_cancel(remote):
    job = remote.submit("spin", units=2, ms=20_000, unit_count=2)
    with pytest.raises(sparecycles.DeadlineExceeded):
        job.result(timeout=0.3)
    job.cancel()
    with pytest.raises(sparecycles.Cancelled):
        job.result(timeout=60)
    assert remote.status(job.id).state == "cancelled"


def test_another_key_sees_a_job_but_may_not_cancel_it(remote, cluster):
    # The coordinator's default roles (submit,read): every key sees every job, and cancels its own.
    job = remote.submit("spin", units=2, ms=20_000, unit_count=2)
    with sparecycles.Client.connect(cluster.client_endpoint) as stranger:
        assert stranger.status(job.id).state in ("queued", "running")
        with pytest.raises(sparecycles.PermissionDenied, match="admin") as e:
            stranger.cancel(job.id)
        assert isinstance(e.value, PermissionError) and e.value.code == "PERMISSION_DENIED"
    assert remote.status(job.id).state in ("queued", "running")
    job.cancel()
    assert remote.status(job.id).state == "cancelled"


def test_as_completed_over_many_remote_jobs(remote):
    jobs = [remote.submit("primes", to=1000 * (i + 1)) for i in range(25)]
    answers = {}
    for job in sparecycles.as_completed(jobs, timeout=300):
        answers[job.id] = job.result().answer["count"]
    assert answers == {j.id: count_primes_below(1000 * (i + 1)) for i, j in enumerate(jobs)}


def test_a_stopped_coordinator_is_unavailable(tmp_path):
    from conftest import Cluster
    c = Cluster(tmp_path, workers=0)
    try:
        client = sparecycles.Client.connect(c.client_endpoint, timeout=1)
        assert client.jobs() == []
    finally:
        c.stop()
    with pytest.raises(sparecycles.Unavailable):
        client.jobs()
    client.close()
