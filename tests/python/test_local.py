# The local client (coordinator + worker embedded in the Python process): results, files,
# listings, as_completed / wait over many jobs, the GIL while waiting, Ctrl-C, progress bars.
import collections
import os
import signal
import sys
import threading
import time

import pytest

import sparecycles
from conftest import count_primes_below


def test_primes_answer_matches_a_python_sieve(local):
    job = local.submit("primes", to=200_000)
    r = job.result(timeout=120)
    expected = count_primes_below(200_000)
    assert r.answer["count"] == expected
    assert r.summary == str(expected)
    assert isinstance(r.bytes, bytes) and r.bytes
    assert r.info.state == "done" and r.info.id == job.id == r.id
    assert job.done() and job.info().final
    # A second call returns the same result without asking again.
    assert job.result().answer == r.answer


def test_wordfreq_from_bytes_and_from_a_file(local, tmp_path):
    text = ("the the the the the and and and and cat cat cat dog dog zebra\n" * 40)
    want = collections.Counter(text.split())
    from_bytes = local.submit("wordfreq", input=text.encode(), top=3).result(timeout=120)
    path = tmp_path / "book.txt"
    path.write_text(text)
    from_file = local.submit("wordfreq", input=path, top=3).result(timeout=120)
    for r in (from_bytes, from_file):
        assert r.answer["total_words"] == sum(want.values())
        assert r.answer["distinct_words"] == len(want)
        assert [(t["word"], t["count"]) for t in r.answer["top"]] == want.most_common(3)


def test_image_results_are_written_like_the_cli_does(local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = local.submit("mandelbrot", width=80, height=60)
    r = job.result(timeout=120)
    assert r.media_type == "image/png"
    assert r.path == f"mandelbrot-{job.id}.png"
    data = (tmp_path / r.path).read_bytes()
    assert data == r.bytes and data.startswith(b"\x89PNG\r\n\x1a\n")
    assert r._repr_png_() == r.bytes  # shown inline in Jupyter
    # An explicit path, and no file at all.
    other = local.submit("mandelbrot", width=40, height=30)
    r2 = other.result(timeout=120, output=tmp_path / "here.png")
    assert r2.path == str(tmp_path / "here.png") and (tmp_path / "here.png").read_bytes() == r2.bytes
    third = local.submit("mandelbrot", width=40, height=30)
    assert third.result(timeout=120, output=False).path is None
    assert not (tmp_path / f"mandelbrot-{third.id}.png").exists()
    # Results that are not images are not written by default.
    r4 = local.submit("primes", to=1000).result(timeout=120)
    assert r4.path is None and not list(tmp_path.glob("primes-*"))


def test_listings_and_reprs_are_readable(local):
    job = local.submit("primes", to=5000, name="small one")
    job.result(timeout=120)
    infos = {i.id: i for i in local.jobs()}
    assert infos[job.id].name == "small one" and infos[job.id].state == "done"
    assert local.status(job.id).state == "done"
    text = repr(job)
    assert f"Job {job.id}" in text and "primes" in text and "done" in text
    assert "small one" in repr(infos[job.id]) and "units" in repr(infos[job.id])
    peers = local.peers()
    assert len(peers) == 1 and peers[0].cores >= 1 and peers[0].units_done >= 1
    assert peers[0].peer_id in repr(peers[0]) and "slots" in repr(peers[0])
    assert "local" in repr(local) and local.endpoint in repr(local)
    r = job.result()
    assert str(job.id) in repr(r) and "primes" in repr(r) and "done" in repr(r)


def test_as_completed_over_many_jobs(local):
    # Spin jobs of different lengths: each is yielded exactly once, and only once it has ended.
    jobs = [local.submit("spin", units=1, ms=(i % 5) * 20) for i in range(40)]
    seen = []
    for job in sparecycles.as_completed(jobs, timeout=300):
        assert job.done()
        seen.append(job)
        assert job.result(timeout=10).info.state == "done"
    assert len(seen) == len(jobs) and set(seen) == set(jobs)


def test_as_completed_gives_the_short_job_before_the_long_one(local):
    long_job = local.submit("spin", units=1, ms=3000)
    short_job = local.submit("spin", units=1, ms=0)
    order = list(sparecycles.as_completed([long_job, short_job], timeout=120))
    assert order == [short_job, long_job]


def test_as_completed_times_out(local):
    job = local.submit("spin", units=1, ms=5000)
    with pytest.raises(sparecycles.DeadlineExceeded):
        list(sparecycles.as_completed([job], timeout=0.3))
    job.cancel()


def test_wait_first_and_all_completed(local):
    slow = local.submit("spin", units=1, ms=4000)
    fast = [local.submit("spin", units=1, ms=0) for _ in range(3)]
    done, not_done = sparecycles.wait(fast + [slow], timeout=120, return_when=sparecycles.FIRST_COMPLETED)
    assert done and done <= set(fast) and slow in not_done
    done, not_done = sparecycles.wait(fast, timeout=120)
    assert done == set(fast) and not not_done
    done, not_done = sparecycles.wait(fast + [slow], timeout=0.2)  # times out: no exception
    assert slow in not_done and set(fast) <= done
    done, not_done = sparecycles.wait(fast + [slow], timeout=120)
    assert done == set(fast + [slow]) and not not_done


def test_waiting_releases_the_gil(local):
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        job = local.submit("spin", units=1, ms=600)
        before = counter[0]
        job.result(timeout=120)
        during = counter[0] - before
    finally:
        stop.set()
        t.join()
    # With the GIL held for 0.6 s the other thread could only run at the 5 ms switch interval
    # boundaries of the waiting thread, which never come while it sits in C++.
    assert during > 100_000, during


def test_ctrl_c_interrupts_a_wait(local):
    job = local.submit("spin", units=1, ms=20_000)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        job.result(timeout=60)
    assert time.monotonic() - t0 < 5
    job.cancel()


def test_progress_bar_with_tqdm(local, capsys):
    pytest.importorskip("tqdm", reason="SKIP: python3-tqdm is not installed")
    job = local.submit("spin", units=6, ms=100, unit_count=6)
    job.result(timeout=120, progress=True)
    err = capsys.readouterr().err
    assert f"job {job.id}" in err and "6/6" in err


def test_no_progress_bar_and_no_error_without_tqdm(local, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    job = local.submit("spin", units=3, ms=50)
    assert job.result(timeout=120, progress=True).info.state == "done"
    assert capsys.readouterr().err == ""


def test_closing_stops_the_client_and_its_jobs():
    client = sparecycles.Client.local(cores=1)
    job = client.submit("primes", to=1000)
    assert job.result(timeout=120).answer["count"] == count_primes_below(1000)
    with client:
        pass
    assert client.closed and "closed" in repr(client)
    with pytest.raises(sparecycles.FailedPrecondition):
        client.submit("primes", to=1000)
    with pytest.raises(sparecycles.FailedPrecondition):
        job.info()
    assert "closed" in repr(job)


def test_the_example_tour_runs(tmp_path):
    import subprocess
    tour = os.path.join(os.environ.get("SPARECYCLES_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                        "examples", "python", "tour.py")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(sparecycles.__file__))))
    p = subprocess.run([sys.executable, tour], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "{'count': " in p.stdout and "π ≈ 3.1" in p.stdout and "Cancelled:" in p.stdout
    assert list(tmp_path.glob("mandelbrot-*.png"))
