# Progress callbacks: what they receive, on which thread, and that a callback may call back into
# the client (submit, list, wait for another job) without deadlocking the client's I/O thread.
import threading
import time

import pytest

import sparecycles
from conftest import count_primes_below


def test_callbacks_see_progress_then_the_end_once(local):
    seen = []
    ended = threading.Event()
    threads = set()

    def cb(info):
        threads.add(threading.current_thread().name)
        seen.append(info)
        if info.final:
            ended.set()

    job = local.submit("spin", units=8, ms=60, unit_count=8)
    job.on_progress(cb)
    r = job.result(timeout=120)
    assert ended.wait(30)
    time.sleep(0.3)  # a late duplicate of the end would arrive now
    assert [i.final for i in seen].count(True) == 1 and seen[-1].final
    assert seen[-1].state == "done" and seen[-1].units_done == 8 == r.info.units_done
    done_counts = [i.units_done for i in seen]
    assert done_counts == sorted(done_counts)  # never backwards
    assert len(seen) >= 2  # the state at registration, then at least the end
    assert all(isinstance(i, sparecycles.JobInfo) and i.id == job.id for i in seen)
    assert threads == {"sparecycles-callbacks"}


def test_a_callback_registered_after_the_end_is_called_once(local):
    job = local.submit("primes", to=1000)
    job.result(timeout=120)
    got = []
    ended = threading.Event()
    job.on_progress(lambda i: (got.append(i), ended.set()))
    assert ended.wait(30)
    time.sleep(0.2)
    assert len(got) == 1 and got[0].state == "done"


def test_a_callback_may_call_back_into_the_client(local):
    # On every update the callback lists jobs and peers; at the end it submits a second job and
    # waits for its result, all from the callback thread. A callback on the I/O thread would
    # deadlock here: the I/O thread would be waiting for replies only it can deliver.
    outcome = {}
    finished = threading.Event()

    def cb(info):
        try:
            outcome.setdefault("jobs", []).append(len(local.jobs()))
            outcome["peers"] = len(local.peers())
            outcome["self"] = local.status(info.id).id
            if info.final:
                inner = local.submit("primes", to=10_000)
                outcome["inner"] = inner.result(timeout=60).answer["count"]
                finished.set()
        except Exception as e:  # recorded and checked below
            outcome["error"] = repr(e)
            finished.set()

    job = local.submit("spin", units=4, ms=50, unit_count=4)
    job.on_progress(cb)
    job.result(timeout=120)
    assert finished.wait(90), "the callback did not finish: deadlock?"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["inner"] == count_primes_below(10_000)
    assert outcome["peers"] == 1 and outcome["self"] == job.id and min(outcome["jobs"]) >= 1


def test_one_raising_callback_does_not_stop_the_others(local, capsys):
    got = []
    ended = threading.Event()

    def bad(info):
        raise RuntimeError("a bug in user code")

    def good(info):
        got.append(info)
        if info.final:
            ended.set()

    job = local.submit("spin", units=2, ms=20)
    job.on_progress(bad).on_progress(good)
    job.result(timeout=120)
    assert ended.wait(30) and got[-1].final
    assert "a bug in user code" in capsys.readouterr().err


def test_on_progress_needs_a_callable(local):
    job = local.submit("primes", to=100)
    with pytest.raises(sparecycles.InvalidArgument):
        job.on_progress("not callable")
    job.result(timeout=120)


def test_callbacks_of_many_jobs_all_end(local):
    ended = set()
    lock = threading.Lock()
    all_ended = threading.Event()
    jobs = [local.submit("spin", units=1, ms=0) for _ in range(30)]

    def make(job_id):
        def cb(info):
            if info.final:
                with lock:
                    ended.add(job_id)
                    if len(ended) == len(jobs):
                        all_ended.set()
        return cb

    for j in jobs:
        j.on_progress(make(j.id))
    assert all_ended.wait(120), f"{len(ended)}/{len(jobs)} ended"
