"""SpareCycles from Python: submit jobs, watch their progress and collect their results.

    import sparecycles

    client = sparecycles.Client.local()                 # coordinator + worker in this process
    job = client.submit("primes", to=10**9)
    print(job.result().answer)                          # {'count': 50847534, ...}

``Client.connect("tcp://host:7738")`` talks to a real coordinator instead. See docs/python.md.

Threading: Client and Job may be used from any thread. Waiting (``Job.result``, ``wait``,
``as_completed``) releases the GIL. Progress callbacks run on one background Python thread
("sparecycles-callbacks"), never on the client's network thread, so a callback may call back
into the client. Errors are exceptions named after the SDK's status codes (``NotFound``,
``DeadlineExceeded``, ...), all subclasses of ``SpareCyclesError``.
"""

from __future__ import annotations

import atexit
import concurrent.futures as _futures
import dataclasses
import json as _json
import os
import sys
import threading
import time
import traceback
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from . import _sparecycles as _core

__version__ = "0.1.0"

__all__ = [
    "Client", "Job", "JobInfo", "PeerInfo", "Result", "as_completed", "wait",
    "FIRST_COMPLETED", "ALL_COMPLETED",
    "SpareCyclesError", "InvalidArgument", "NotFound", "Unavailable", "DeadlineExceeded",
    "Cancelled", "ResourceExhausted", "FailedPrecondition", "DataLoss", "Internal",
    "PermissionDenied", "Unimplemented", "JobFailed",
]

FIRST_COMPLETED = _futures.FIRST_COMPLETED
ALL_COMPLETED = _futures.ALL_COMPLETED

# ------------------------------------------------------------------------------------ errors


class SpareCyclesError(Exception):
    """Base of every SpareCycles error. ``code`` is the SDK status code's name."""

    code = "UNKNOWN"


class InvalidArgument(SpareCyclesError, ValueError):
    """The request is wrong (bad parameter, unknown option); do not retry it unchanged."""

    code = "INVALID_ARGUMENT"


class NotFound(SpareCyclesError, LookupError):
    """The named job or task does not exist."""

    code = "NOT_FOUND"


class Unavailable(SpareCyclesError, ConnectionError):
    """The coordinator could not be reached or did not answer in time; retrying may work."""

    code = "UNAVAILABLE"


class DeadlineExceeded(SpareCyclesError, TimeoutError):
    """A wait ran out of time. The job keeps running."""

    code = "DEADLINE_EXCEEDED"


class Cancelled(SpareCyclesError):
    """The job was cancelled."""

    code = "CANCELLED"


class ResourceExhausted(SpareCyclesError):
    """A limit was hit (input or result size, count)."""

    code = "RESOURCE_EXHAUSTED"


class FailedPrecondition(SpareCyclesError):
    """The system is not in a state where this works (for example: the client is closed)."""

    code = "FAILED_PRECONDITION"


class DataLoss(SpareCyclesError):
    """Stored or received data is corrupt."""

    code = "DATA_LOSS"


class Internal(SpareCyclesError):
    """A bug in SpareCycles."""

    code = "INTERNAL"


class PermissionDenied(SpareCyclesError, PermissionError):
    """This client's key, or its role, may not do this (docs/security.md, "Client roles")."""

    code = "PERMISSION_DENIED"


class Unimplemented(SpareCyclesError, NotImplementedError):
    """A feature this version of the SDK does not have yet (not an SDK status code)."""

    code = "UNIMPLEMENTED"


class JobFailed(SpareCyclesError):
    """The job ended in the failed state. ``result`` holds its info and the units' failures."""

    code = "FAILED"

    def __init__(self, message: str, result: Optional["Result"] = None):
        super().__init__(message)
        self.result = result


_ERRORS_BY_CODE = {
    InvalidArgument.code: InvalidArgument, NotFound.code: NotFound, Unavailable.code: Unavailable,
    DeadlineExceeded.code: DeadlineExceeded, Cancelled.code: Cancelled,
    ResourceExhausted.code: ResourceExhausted, FailedPrecondition.code: FailedPrecondition,
    DataLoss.code: DataLoss, Internal.code: Internal, PermissionDenied.code: PermissionDenied,
}
_core._set_error_classes({num: _ERRORS_BY_CODE[name] for num, name in _core.status_code_names().items()})

# ------------------------------------------------------------------------------- plain values


def _ago(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "-"


@dataclasses.dataclass(frozen=True)
class JobInfo:
    """A job's state and progress as the coordinator last reported it."""

    id: int
    task: str
    name: str
    state: str  # queued, running, done, failed, cancelled
    priority: int
    units_total: int
    units_done: int
    units_failed: int
    units_running: int
    submitted_at: float  # seconds since the Unix epoch
    finished_at: float
    cpu_seconds: float  # validated CPU time spent on the job
    error: str
    waiting: str = ""  # why queued units cannot go to any peer now; empty while they can

    @property
    def final(self) -> bool:
        """True once the job has ended (done, failed or cancelled)."""
        return self.state in ("done", "failed", "cancelled")

    @property
    def fraction(self) -> float:
        """Share of units done, 0..1 (0 while the number of units is not known yet)."""
        return self.units_done / self.units_total if self.units_total else 0.0

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        err = f" error={self.error!r}" if self.error else ""
        err += f" waiting={self.waiting!r}" if self.waiting else ""
        return (f"<JobInfo {self.id} {self.task}{name} {self.state} "
                f"{self.units_done}/{self.units_total} units, {self.units_running} running, "
                f"{self.cpu_seconds:.1f} cpu-s{err}>")


@dataclasses.dataclass(frozen=True)
class PeerInfo:
    """A worker connected to the coordinator."""

    peer_id: str
    hostname: str
    state: str  # running, throttled, paused
    reason: str
    cores: int
    slots: int
    idle_slots: int
    running: int
    units_done: int
    cpu_seconds: float
    connected_seconds: float
    silent_seconds: float
    units_invalid: int
    credibility: float

    def __repr__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return (f"<PeerInfo {self.peer_id} on {self.hostname} {self.state}{why}: "
                f"{self.slots - self.idle_slots}/{self.slots} slots busy, {self.units_done} units done, "
                f"credibility {self.credibility:.2f}>")


@dataclasses.dataclass(frozen=True)
class Result:
    """What a finished job produced.

    ``bytes`` is the merged result (task-defined: a PNG for mandelbrot), ``answer`` the parsed
    JSON answer (None when the task gives none), ``summary`` a one-line human answer and
    ``path`` the file the result was written to, if any.
    """

    info: JobInfo
    bytes: bytes
    answer: Any
    json: str
    summary: str
    media_type: str
    failures: List[Tuple[int, str]]  # (unit, reason) for failed units
    path: Optional[str] = None
    # A command package's outputs, in unit order: "unit-000042/NAME" -> bytes.
    files: Dict[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.info.id

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Writes ``bytes`` to ``path`` (atomically: a temporary file, then a rename)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(self.bytes)
        os.replace(tmp, path)
        return path

    def save_files(self, directory: Union[str, os.PathLike]) -> str:
        """Writes ``files`` under ``directory`` (created if missing) as unit-NNNNNN/NAME. A name
        that would leave the directory (absolute, "..") is refused with InvalidArgument."""
        root = os.path.realpath(os.fspath(directory))
        for name, data in self.files.items():
            parts = name.split("/")
            if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
                raise InvalidArgument(f"refusing to write {name!r} outside {root}")
            path = os.path.join(root, *parts)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.realpath(os.path.dirname(path)) != os.path.dirname(path):
                raise InvalidArgument(f"refusing to write {name!r} through a symbolic link")
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return root

    def __bytes__(self) -> bytes:
        return self.bytes

    def _repr_png_(self) -> Optional[bytes]:  # Jupyter shows image results inline
        return self.bytes if self.media_type == "image/png" else None

    def __repr__(self) -> str:
        where = f" written to {self.path!r}" if self.path else ""
        return (f"<Result of job {self.info.id} {self.info.task} {self.info.state}: {self.summary!r}, "
                f"{len(self.bytes)} bytes {self.media_type or 'application/octet-stream'}{where}>")


def _info(d: Dict[str, Any]) -> JobInfo:
    return JobInfo(**d)


def _result(d: Dict[str, Any]) -> Result:
    try:
        answer = _json.loads(d["json"]) if d["json"] else None
    except ValueError as e:
        raise DataLoss(f"the job's JSON answer does not parse: {e}") from None
    return Result(info=_info(d["info"]), bytes=d["bytes"], answer=answer, json=d["json"],
                  summary=d["summary"], media_type=d["media_type"], failures=list(d["failures"]),
                  files=dict(d.get("files", [])))


# -------------------------------------------------------------------------- progress callbacks


class _Callbacks:
    """Delivers progress updates to Python callbacks on one background thread.

    The SDK's network thread only records updates (in C++, without the GIL); this thread takes
    them and calls the callbacks, so a callback may block or call into the client. Updates of one
    job may be coalesced when callbacks are slower than the updates; every callback sees the
    job's state when it was registered, and the final state exactly once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: Dict[Tuple[int, int], List[List[Any]]] = {}  # key -> [[callback, ended]]
        self._thread: Optional[threading.Thread] = None

    def add(self, job: "Job", callback: Callable[[JobInfo], Any]) -> None:
        key = (job._core.client_serial, job.id)
        with self._lock:
            self._by_job.setdefault(key, []).append([callback, False])
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sparecycles-callbacks", daemon=True)
                self._thread.start()
        job._core.watch()  # queues the current state at once, then every update

    def _run(self) -> None:
        while not _core.events_closed():
            ev = _core.next_event(0.5)
            if ev is None:
                continue
            serial, job_id, d = ev
            info = _info(d)
            with self._lock:
                entries = list(self._by_job.get((serial, job_id), ()))
            for entry in entries:
                if entry[1]:
                    continue  # this callback has seen the end already
                if info.final:
                    entry[1] = True
                try:
                    entry[0](info)
                except Exception:  # a callback's bug must not stop the others
                    print(f"sparecycles: a progress callback of job {job_id} raised:", file=sys.stderr)
                    traceback.print_exc()
            if info.final:
                with self._lock:
                    lst = self._by_job.get((serial, job_id), [])
                    if all(e[1] for e in lst):
                        self._by_job.pop((serial, job_id), None)

    def stop(self) -> None:
        _core.close_events()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=2)


_callbacks = _Callbacks()
atexit.register(_callbacks.stop)

# ----------------------------------------------------------------------------- progress bars


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None  # type: ignore[union-attr]
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _progress_bar(job: "Job", progress: Optional[bool]):
    """A tqdm bar for ``job``, or None: when tqdm is not importable, when ``progress`` is False,
    or when it is None (automatic) and neither a notebook nor a terminal on stderr is there."""
    if progress is False:
        return None
    if progress is None and not (_in_notebook() or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())):
        return None
    try:
        from tqdm.auto import tqdm  # notebook widget in Jupyter, text bar in a terminal
    except ImportError:
        return None
    return tqdm(total=None, desc=f"job {job.id}", unit="unit", leave=True)


def _update_bar(bar, info: JobInfo) -> None:
    if info.units_total and bar.total != info.units_total:
        bar.total = info.units_total
    if info.units_done > bar.n:
        bar.update(info.units_done - bar.n)
    bar.set_postfix_str(f"{info.state}, {info.units_running} running", refresh=False)
    bar.refresh()


# ------------------------------------------------------------------------------------- jobs


def _deadline(timeout: Optional[float]) -> Optional[float]:
    if timeout is None:
        return None
    if not timeout >= 0:
        raise InvalidArgument("timeout must be None or a number of seconds >= 0")
    return time.monotonic() + timeout


def _left(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class Job:
    """A submitted job. Made by ``Client.submit`` or ``Client.job``; thread-safe."""

    def __init__(self, client: "Client", core: Any):
        self._client = client
        self._core = core
        self._result: Optional[Result] = None
        self._lock = threading.Lock()

    @property
    def id(self) -> int:
        return self._core.id

    @property
    def client(self) -> "Client":
        return self._client

    def info(self) -> JobInfo:
        """The latest state and progress the coordinator pushed (no request is made)."""
        return _info(self._core.info())

    @property
    def state(self) -> str:
        return self._core.info()["state"]

    def done(self) -> bool:
        """True once the job has ended (done, failed or cancelled)."""
        return self._core.final()

    def on_progress(self, callback: Callable[[JobInfo], Any]) -> "Job":
        """Calls ``callback(info)`` now with the current state, on every progress update, and
        once with the final state. It runs on the "sparecycles-callbacks" thread and may call
        back into the client; a slow callback delays the other callbacks, never the client."""
        if not callable(callback):
            raise InvalidArgument("on_progress needs a callable")
        _callbacks.add(self, callback)
        return self

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until the job ends, at most ``timeout`` seconds; True if it has ended."""
        return bool(_core.wait_any([self._core], timeout))

    def result(self, timeout: Optional[float] = None, progress: Optional[bool] = None,
               output: Union[None, bool, str, os.PathLike] = None) -> Result:
        """Waits for the job to end and returns its ``Result``.

        timeout: seconds; None waits as long as it takes. On expiry DeadlineExceeded is raised
            and the job keeps running.
        progress: True draws a tqdm progress bar while waiting, False never does, None (the
            default) does in a notebook or when stderr is a terminal. Without tqdm: no bar.
        output: where to write the result bytes. None (default) does what the `sparecycles` CLI
            does: an image result is written to TASK-JOB.png (or .pgm) in the current directory,
            other results are not written; a path writes there; False writes nothing. For a
            command package's outputs (``Result.files``) the path is a directory (True:
            JOB-outputs), and None writes nothing.

        Raises JobFailed (with ``.result``) when the job failed, Cancelled when it was
        cancelled, DeadlineExceeded on timeout, Unavailable when the coordinator cannot be reached.
        """
        deadline = _deadline(timeout)
        with self._lock:
            cached = self._result
        if cached is None:
            bar = _progress_bar(self, progress) if not self.done() else None
            try:
                while True:
                    left = _left(deadline)
                    step = left if bar is None else (0.2 if left is None else min(left, 0.2))
                    ended = _core.wait_any([self._core], step)
                    if bar is not None:
                        _update_bar(bar, self.info())
                    if ended:
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        raise DeadlineExceeded(f"job {self.id} is still {self.state} after {timeout} s")
            finally:
                if bar is not None:
                    bar.close()
            cached = _result(self._core.fetch(self._client._timeout))
            with self._lock:
                if self._result is None:
                    self._result = cached
                cached = self._result
        if cached.info.state == "cancelled":
            raise Cancelled(f"job {self.id} was cancelled")
        if cached.info.state == "failed":
            why = cached.info.error or "; ".join(f"unit {u}: {r}" for u, r in cached.failures[:3])
            raise JobFailed(f"job {self.id} ({cached.info.task}) failed: {why}", cached)
        return self._write(cached, output)

    def _write(self, r: Result, output: Union[None, bool, str, os.PathLike]) -> Result:
        if output is False:
            return r
        if r.files:  # a command package's outputs: a directory
            if output is None:
                return r
            where = f"{r.id}-outputs" if output is True else os.fspath(output)
            return dataclasses.replace(r, path=r.save_files(where))
        if output is None or output is True:
            if not r.media_type.startswith("image/"):
                return r if output is None else self._write(r, f"{r.info.task}-{r.id}.bin")
            ext = ".png" if r.media_type == "image/png" else ".pgm"
            output = f"{r.info.task}-{r.id}{ext}"
        path = os.fspath(output)
        if r.path == path:
            return r
        r.save(path)
        return dataclasses.replace(r, path=path)

    def cancel(self) -> None:
        """Cancels the job; its running units stop on the peers."""
        self._core.cancel()

    def _release(self) -> None:
        self._core.release()

    def __repr__(self) -> str:
        try:
            i = self.info()
        except SpareCyclesError:
            return f"<Job {self.id} (client closed)>"
        task = i.task or "?"
        units = f" {i.units_done}/{i.units_total} units" if i.units_total else ""
        return f"<Job {i.id} {task} {i.state}{units}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other._client is self._client and other.id == self.id

    def __hash__(self) -> int:
        return hash((id(self._client), self.id))


def _group_wait(jobs: List[Job], timeout: Optional[float]) -> List[int]:
    return list(_core.wait_any([j._core for j in jobs], timeout))


def as_completed(jobs: Iterable[Job], timeout: Optional[float] = None) -> Iterator[Job]:
    """Yields each job as it ends (done, failed or cancelled), the first to end first.

    Raises DeadlineExceeded when ``timeout`` seconds pass before all have ended. Jobs may come
    from several clients.
    """
    pending = list(dict.fromkeys(jobs))
    deadline = _deadline(timeout)
    while pending:
        ended = _group_wait(pending, _left(deadline))
        if not ended:
            raise DeadlineExceeded(f"{len(pending)} job(s) still running after {timeout} s")
        for i in sorted(ended, reverse=True):
            job = pending.pop(i)
            yield job


def wait(jobs: Iterable[Job], timeout: Optional[float] = None,
         return_when: str = ALL_COMPLETED) -> Tuple[set, set]:
    """Waits for ``jobs`` like ``concurrent.futures.wait``: returns ``(done, not_done)`` sets.

    return_when: ALL_COMPLETED (default) or FIRST_COMPLETED. No exception on timeout.
    """
    if return_when not in (ALL_COMPLETED, FIRST_COMPLETED):
        raise InvalidArgument("return_when must be ALL_COMPLETED or FIRST_COMPLETED")
    pending = list(dict.fromkeys(jobs))
    done: set = set()
    deadline = _deadline(timeout)
    while pending:
        ended = _group_wait(pending, _left(deadline))
        if not ended:
            break
        for i in sorted(ended, reverse=True):
            done.add(pending.pop(i))
        if return_when == FIRST_COMPLETED:
            break
    return done, set(pending)


# ----------------------------------------------------------------------------------- client

_SPEC_KEYWORDS = ("name", "priority", "unit_seconds", "unit_count", "quorum", "max_replicas", "max_errors")


def _param_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise InvalidArgument(f"parameter {key!r}: expected str, int, float or bool, got {type(value).__name__}")


def _count(name: str, value: Optional[int], limit: int = 2**32 - 1) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise InvalidArgument(f"{name} must be an integer in 0..{limit}")
    return value


class Client:
    """A connection to a coordinator, or a coordinator and worker embedded in this process.

    Use ``Client.local()`` or ``Client.connect(endpoint)``; ``with`` closes it.
    """

    def __init__(self, core: Any, timeout: float):
        self._core = core
        self._timeout = timeout
        self._jobs: "weakref.WeakSet[Job]" = weakref.WeakSet()

    @classmethod
    def local(cls, cores: int = 0, *, unit_seconds: float = 0, tasks: Optional[List[str]] = None,
              verbose: bool = False) -> "Client":
        """Starts a coordinator and a worker inside this process (127.0.0.1, OS-chosen ports).

        cores: cores for the embedded worker, 0 = all. unit_seconds: target seconds per unit,
        0 = 1 s. tasks: tasks the worker calibrates, None = all. verbose: their logs on stderr.
        """
        _count("cores", cores)
        if not unit_seconds >= 0:
            raise InvalidArgument("unit_seconds must be >= 0")
        return cls(_core.Client.local(cores, float(unit_seconds), list(tasks or []), bool(verbose)), 10.0)

    @classmethod
    def connect(cls, endpoint: str, key: Optional[Any] = None, *, coordinator_key: Optional[str] = None,
                timeout: float = 10.0) -> "Client":
        """Connects to a coordinator's client endpoint, e.g. "tcp://127.0.0.1:7738".

        The connection is encrypted (CurveZMQ) and made lazily: a dead endpoint, or one that does
        not hold the coordinator's key, shows up as Unavailable on the first request.
        coordinator_key: the coordinator's public key (Z85 or hex) or its file
        (``sparecycles-coordinator key`` prints it); None = the key a coordinator of this user on
        this machine published for the endpoint.
        key: the path of this client's CURVE secret key file (mode 0600); None = a fresh key.
        timeout: seconds to wait for each answer.
        """
        if key is not None and not isinstance(key, (str, os.PathLike)):
            raise InvalidArgument("key must be the path of a CURVE secret key file")
        if not isinstance(endpoint, str) or not endpoint:
            raise InvalidArgument("endpoint must be a ZeroMQ endpoint such as 'tcp://127.0.0.1:7738'")
        if not timeout > 0:
            raise InvalidArgument("timeout must be > 0 seconds")
        return cls(_core.Client.connect(endpoint, float(timeout), str(coordinator_key or ""),
                                        os.fspath(key) if key is not None else ""), float(timeout))

    @property
    def endpoint(self) -> str:
        """The coordinator's client endpoint (for a local client: the embedded one's)."""
        return self._core.endpoint

    @property
    def closed(self) -> bool:
        return self._core.closed

    def submit(self, task: Optional[str] = None,
               input: Union[None, bytes, bytearray, memoryview, str, os.PathLike] = None,
               package: Union[None, str, os.PathLike] = None, replicas: Optional[int] = None, *,
               input_dir: Union[None, str, os.PathLike] = None,
               params: Optional[Dict[str, Any]] = None, **kwargs: Any) -> Job:
        """Submits a job of ``task`` (see ``sparecycles tasks``) or of a task ``package`` and
        returns its ``Job``.

        input: input data for data tasks (wordfreq): bytes, or a str / path naming a file
            (at most 64 MiB).
        replicas: copies of each unit issued at first (None = the coordinator's default).
        Keyword arguments are the task's parameters (``to=10**9``); these few are the job's own
        options instead: name (shown in listings), priority (higher first), unit_seconds (target
        seconds per unit), unit_count (exact number of units), quorum, max_replicas, max_errors.
        A task parameter with one of those names goes in ``params={...}``.
        package: a task package (a ``.scpkg`` path, docs/packages.md) to run instead of ``task``.
            This client verifies it, cuts the job (a native package's Plan and Split run here),
            uploads it if the coordinator lacks it and merges the result here; a command
            package's outputs come back in ``Result.files``. A local client needs no keys; a
            coordinator accepts only packages signed by one of its ``--publishers``.
        input_dir: a directory, for a command package that makes one unit per file in it.
        """
        pkg = ""
        if package is not None:
            if task is not None:
                raise InvalidArgument("name either a task or a package, not both")
            if not isinstance(package, (str, os.PathLike)) or not os.fspath(package):
                raise InvalidArgument("package must be the path of a .scpkg file")
            pkg = os.fspath(package)
            task = ""
        elif not isinstance(task, str) or not task:
            raise InvalidArgument("task must be a task name such as 'primes'")
        if input_dir is not None and not pkg:
            raise InvalidArgument("input_dir is for command packages (package=...)")
        opts = {k: kwargs.pop(k) for k in _SPEC_KEYWORDS if k in kwargs}
        all_params = dict(kwargs)
        all_params.update(params or {})
        text = {str(k): _param_text(str(k), v) for k, v in all_params.items()}
        data: Optional[bytes] = None
        path: Optional[str] = None
        if isinstance(input, (bytes, bytearray, memoryview)):
            data = bytes(input)
        elif isinstance(input, (str, os.PathLike)):
            path = os.fspath(input)
        elif input is not None:
            raise InvalidArgument("input must be bytes or a file path")
        priority = opts.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidArgument("priority must be an integer")
        unit_seconds = opts.get("unit_seconds", 0)
        if not isinstance(unit_seconds, (int, float)) or not unit_seconds >= 0:
            raise InvalidArgument("unit_seconds must be a number >= 0")
        core = self._core.submit(
            task, text, data, path, str(opts.get("name", "")), priority, float(unit_seconds),
            _count("unit_count", opts.get("unit_count"), 2**63 - 1), _count("replicas", replicas),
            _count("quorum", opts.get("quorum")), _count("max_replicas", opts.get("max_replicas")),
            _count("max_errors", opts.get("max_errors")), pkg,
            os.fspath(input_dir) if input_dir is not None else "")
        return self._track(Job(self, core))

    def job(self, job_id: int, package: Union[None, str, os.PathLike] = None,
            **params: Any) -> Job:
        """Follows a job that already exists (for example one submitted by another process).
        A job of a task package is merged here when ``package`` names its .scpkg file (with
        the job's parameters again if its Merge needs them); without it its result is the raw
        list of unit results."""
        text = {str(k): _param_text(str(k), v) for k, v in params.items()}
        return self._track(Job(self, self._core.attach(
            _count("job_id", job_id, 2**64 - 1), os.fspath(package) if package else "", text)))

    def status(self, job_id: int) -> JobInfo:
        """Asks the coordinator for one job's state."""
        return _info(self._core.status(_count("job_id", job_id, 2**64 - 1)))

    def jobs(self) -> List[JobInfo]:
        """Every job the coordinator knows."""
        return [_info(d) for d in self._core.jobs()]

    def peers(self) -> List[PeerInfo]:
        """The workers connected to the coordinator."""
        return [PeerInfo(**d) for d in self._core.peers()]

    def cancel(self, job_id: int) -> None:
        self._core.cancel(_count("job_id", job_id, 2**64 - 1))

    def close(self) -> None:
        """Disconnects; a local client also stops its embedded coordinator and worker. The
        client's Job objects stop working (FailedPrecondition)."""
        for job in list(self._jobs):
            job._release()
        self._core.close()

    def _track(self, job: Job) -> Job:
        self._jobs.add(job)
        return job

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "local" if self._core.is_local else "remote"
        state = " closed" if self._core.closed else ""
        return f"<sparecycles.Client {kind} {self._core.endpoint}{state}>"
