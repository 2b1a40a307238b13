# Errors reach Python as exception classes named after the SDK's status codes.
import pytest

import sparecycles
from sparecycles import _sparecycles


def test_every_status_code_has_its_exception_class():
    names = _sparecycles.status_code_names()
    assert len(names) == 10
    for num, name in names.items():
        cls = sparecycles._ERRORS_BY_CODE[name]
        assert cls.code == name and issubclass(cls, sparecycles.SpareCyclesError)
        assert cls.__name__ == "".join(part.capitalize() for part in name.split("_"))


def test_bad_submissions(local):
    with pytest.raises(sparecycles.NotFound, match="unknown task"):
        local.submit("no-such-task")
    with pytest.raises(sparecycles.InvalidArgument, match="not an integer") as e:
        local.submit("primes", to="many")
    assert isinstance(e.value, ValueError) and e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(sparecycles.InvalidArgument, match="no input"):
        local.submit("wordfreq")
    with pytest.raises(sparecycles.InvalidArgument):
        local.submit("primes", to=[1, 2])
    with pytest.raises(sparecycles.InvalidArgument):
        local.submit("primes", to=10, replicas=-1)
    with pytest.raises(sparecycles.InvalidArgument):
        local.submit("primes", to=10, input=12)


def test_missing_and_oversized_input_files(local, tmp_path):
    with pytest.raises(sparecycles.NotFound):
        local.submit("wordfreq", input=tmp_path / "absent.txt")
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(65 << 20)  # sparse: over the 64 MiB input limit without writing it
    with pytest.raises(sparecycles.ResourceExhausted):
        local.submit("wordfreq", input=big)


def test_unknown_job(local):
    with pytest.raises(sparecycles.NotFound) as e:
        local.job(987654321)
    assert isinstance(e.value, LookupError)


def test_timeout_leaves_the_job_running(local):
    job = local.submit("spin", units=1, ms=1500)
    with pytest.raises(sparecycles.DeadlineExceeded) as e:
        job.result(timeout=0.2)
    assert isinstance(e.value, TimeoutError)
    assert not job.done()
    assert job.result(timeout=120).info.state == "done"
    with pytest.raises(sparecycles.InvalidArgument):
        job.result(timeout=-1)


def test_cancel_raises_cancelled_from_result(local):
    job = local.submit("spin", units=4, ms=10_000, unit_count=4)
    job.cancel()
    with pytest.raises(sparecycles.Cancelled):
        job.result(timeout=60)
    assert job.info().state == "cancelled"
    # Cancelling by id through the client works too.
    other = local.submit("spin", units=2, ms=10_000)
    local.cancel(other.id)
    with pytest.raises(sparecycles.Cancelled):
        other.result(timeout=60)


class _FailedCore:
    """Stands in for the C++ job of a job that ended failed: no built-in task fails on demand."""

    id = 7
    client_serial = 0

    def final(self):
        return True

    def info(self):
        return dict(id=7, task="spin", name="", state="failed", priority=0, units_total=2,
                    units_done=1, units_failed=1, units_running=0, submitted_at=0.0,
                    finished_at=0.0, cpu_seconds=0.0, error="")

    def fetch(self, timeout):
        return dict(info=self.info(), bytes=b"", summary="", json="", media_type="",
                    failures=[(1, "worker crashed")])


def test_a_failed_job_raises_job_failed_with_its_result(local, monkeypatch):
    monkeypatch.setattr(_sparecycles, "wait_any", lambda jobs, timeout=None: [0])
    job = sparecycles.Job(local, _FailedCore())
    with pytest.raises(sparecycles.JobFailed, match="unit 1: worker crashed") as e:
        job.result(timeout=1)
    assert e.value.result.failures == [(1, "worker crashed")] and e.value.result.info.units_failed == 1


def test_a_missing_key_file_and_package_mistakes_are_named(local, cluster, tmp_path):
    # key= is a CURVE secret key file; one that is not there is named in the error.
    with pytest.raises(sparecycles.SpareCyclesError, match="no-such.key"):
        sparecycles.Client.connect(cluster.client_endpoint, key=str(tmp_path / "no-such.key"))
    with pytest.raises(sparecycles.InvalidArgument, match="coordinator key"):
        sparecycles.Client.connect(cluster.client_endpoint, coordinator_key="not-a-key")
    # Packages are in (tests/python/test_packages.py); a task and a package at once is a mistake,
    # and a package file that is not there is named in the error.
    with pytest.raises(sparecycles.InvalidArgument, match="not both"):
        local.submit("primes", to=10, package="some-package.scpkg")
    with pytest.raises(sparecycles.SpareCyclesError, match="some-package.scpkg"):
        local.submit(package="some-package.scpkg")


def test_an_unreachable_coordinator_is_unavailable():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    client = sparecycles.Client.connect(f"tcp://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(sparecycles.Unavailable) as e:
        client.jobs()
    assert isinstance(e.value, ConnectionError)
    with pytest.raises(sparecycles.InvalidArgument):
        sparecycles.Client.connect("")
    client.close()
