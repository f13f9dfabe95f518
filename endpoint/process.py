"""The ``process`` engine: a pool of worker subprocesses per execution environment.

Workers are started as ``[interpreter, "-m", "freight.endpoint.worker",
"--target", TARGET]`` (never ``multiprocessing`` fork: one mechanism for the
default interpreter, a venv's interpreter and a container), each in a session
of its own, and talk to the engine over their stdin/stdout pipes
(``freight.endpoint.worker`` describes the messages).  One thread per worker
slot feeds its worker one task at a time, so a task costs one write and one
read on each side.

Frames
    Frames of ``large_frame`` bytes or more (1 MiB by default) are copied once,
    inside ``submit``, into a ``multiprocessing.shared_memory.SharedMemory``
    segment (named ``freight_PID_N``; written with ``pwrite``, twice as fast
    as through the mapping) that the worker maps without copying; smaller
    frames are copied into ``bytes`` and travel in the message.  Either way
    ``submit`` keeps no reference to the caller's buffers.  A task's segments
    are unlinked when it ends, however it ends (result, failure, worker lost,
    cancelled, shut down); the parent's ``multiprocessing`` resource tracker
    unlinks them should the whole process die.

Faults
    A worker that dies (segfault, ``os._exit``, SIGKILL by the OOM killer) fails
    its running task with ``WorkerLost`` (pid, exit code or signal name); its
    slot starts a replacement and queued tasks go on.  A task is only ever lost
    with its worker once sent: if a worker turns out dead before it got the task,
    the task goes back to the head of the queue.

Limits (``WorkItem.limits``)
    ``timeout_s``: counted from when the task is sent to its worker; at the limit
    the engine kills the worker (its whole process group), fails the task with
    ``TaskTimeout`` and starts a replacement.
    ``memory_mb``: the engine watches the worker's resident set size (the whole
    worker process, interpreter included, from ``/proc/PID/statm``) every
    ``memory_poll_s`` while the task runs, and kills the worker when it is over
    the limit; the task fails with ``MemoryLimitExceeded``.  Watching from the
    parent works whatever the task does (C extensions, ``except MemoryError``)
    and does not confuse reserved address space with used memory, as
    ``RLIMIT_AS`` would; the price is that a task may overshoot by what it can
    allocate in one poll interval.  Memory of processes the task starts itself is
    not counted.  In container environments the limit is not enforced by the
    engine (the pid it sees is the runtime's client): use the runtime's own.

Execution environments (``WorkItem.environment``)
    ``None``: ``sys.executable`` (or ``python`` given to the engine).
    ``{"type": "python", "location": PATH}``: workers started from that
    interpreter, which must be able to import freight and its dependencies.
    ``{"type": "docker" | "podman", "location": IMAGE}``: workers run with
    ``RUNTIME run --rm -i --name freight-worker-... IMAGE python3 -m
    freight.endpoint.worker``; ``{"type": "apptainer" | "singularity",
    "location": IMAGE}`` with ``apptainer exec IMAGE python3 -m ...``.  The image
    needs Python >= 3.11 with freight's dependencies (``pyproject.toml``:
    msgpack, dill, cloudpickle, ...); freight itself is mounted read-only from this
    installation's source (``mount_freight``, default true: set it false for an
    image with freight installed), and so is every ``extra_path`` entry.  Optional
    keys: ``"python"`` (the interpreter in the image, default ``python3``) and
    ``"options"`` (a list of extra arguments for the runtime).
    Each environment gets a sub-pool of ``workers`` slots, started on its first
    task and kept until ``shutdown``.  An unknown type, a missing interpreter
    or runtime, or workers that do not start there fail that task with
    ``EnvironmentUnavailable`` (with the worker's last stderr lines), never
    the pool.

Test targets
    ``target`` is a ``"module:function"`` the *worker* imports; ``extra_path``
    entries are put in front of the workers' ``PYTHONPATH`` so a target module
    outside any installed package (a test module) can be found there.
"""

from __future__ import annotations

import collections
import itertools
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from freight.endpoint.engine import EngineStatus, ResourceLimits, WorkItem
from freight.endpoint.errors import (
    EngineError,
    EnvironmentUnavailable,
    MemoryLimitExceeded,
    TaskTerminated,
    TaskTimeout,
    WorkerLost,
    signal_name,
)
from freight.endpoint.worker import DEFAULT_TARGET, Reader, pack, write_all

__all__ = ["CONTAINER_TYPES", "ProcessEngine", "segment_prefix"]

#: Environment types that run workers in a container runtime.
CONTAINER_TYPES = frozenset({"docker", "podman", "apptainer", "singularity"})

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STDERR_TAIL = 20


class _StartFailed(Exception):
    """A worker could not be started (the reason is the message)."""


@dataclass(slots=True)
class _Task:
    task_id: str
    inline: list[bytes]
    specs: list[list[Any]]
    segments: list[SharedMemory]
    limits: ResourceLimits
    future: Future[bytes]
    pool: _Pool
    on_start: Callable[[], None] | None = None
    state: str = "queued"
    worker: _Worker | None = None


@dataclass(frozen=True, slots=True)
class _EnvSpec:
    """How to start a worker for one environment."""

    env_type: str | None
    location: str | None
    command: tuple[str, ...]
    container: bool = False
    runtime: str | None = None
    start_timeout_s: float = 60.0


class _Worker:
    """One worker process and the engine's ends of its pipes."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str | None) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.name = name  # the container's name, for container runtimes
        assert proc.stdin is not None and proc.stdout is not None
        self.fd_to = proc.stdin.fileno()
        self.fd_from = proc.stdout.fileno()
        self.reader = Reader(self.fd_from)
        self.stderr_tail: collections.deque[str] = collections.deque(
            maxlen=_STDERR_TAIL
        )
        self.kill_reason: EngineError | None = None
        self.hello: dict[str, Any] = {}
        self._stderr_thread = threading.Thread(
            target=self._forward_stderr,
            name=f"freight-worker-{self.pid}-stderr",
            daemon=True,
        )
        self._stderr_thread.start()

    def _forward_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        out = getattr(sys.stderr, "buffer", None)
        for line in iter(stream.readline, b""):
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())
            try:
                if out is not None:
                    out.write(line)
                    out.flush()
                else:
                    sys.stderr.write(line.decode("utf-8", "replace"))
            except (OSError, ValueError):  # stderr closed or replaced
                pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, reason: EngineError | None = None) -> None:
        """Kill the worker's process group (and its container); ``reason`` is
        what its running task fails with."""
        self.signal(reason)
        self.kill_container()

    def signal(self, reason: EngineError | None = None) -> None:
        """SIGKILL the worker's process group (fast: callable under a lock)."""
        if reason is not None and self.kill_reason is None:
            self.kill_reason = reason
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill_container(self) -> None:
        """Kill the worker's container, if it runs in one."""
        if self.name is not None:
            runtime = self.proc.args[0] if isinstance(self.proc.args, list) else None
            if runtime:
                subprocess.Popen(
                    [str(runtime), "kill", self.name],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ).wait()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker: end its input, wait, kill if it lingers; reap it."""
        for f in (self.proc.stdin,):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        self.reap()

    def reap(self) -> int:
        """Wait for the dead process, close the pipes; its return code."""
        code = self.proc.wait()
        self._stderr_thread.join(5.0)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        return code

    def rss_mb(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE // (1 << 20)
        except (OSError, ValueError, IndexError):
            return None


class _Pool:
    """The slots of one execution environment."""

    def __init__(self, engine: ProcessEngine, spec: _EnvSpec, slots: int) -> None:
        self.engine = engine
        self.spec = spec
        self.queue: collections.deque[_Task] = collections.deque()
        self.cv = threading.Condition(engine._lock)
        self.workers: set[_Worker] = set()
        self.threads = [
            threading.Thread(
                target=engine._slot,
                args=(self,),
                name=f"freight-process-slot-{i}",
                daemon=True,
            )
            for i in range(slots)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()


class ProcessEngine:
    """Runs ``target`` in worker subprocesses (see the module docstring).

    ``workers`` slots per environment (default ``os.cpu_count()``); ``target``
    a ``"module:function"`` the workers import; ``extra_path`` directories put
    first on the workers' ``PYTHONPATH``; ``env`` extra environment variables
    for workers; ``python`` the default interpreter (``sys.executable``);
    ``large_frame`` the size from which a frame goes through shared memory;
    ``memory_poll_s`` how often a memory limit is checked; ``start_timeout_s``
    how long a worker may take to start (containers get at least 120 s).
    A task's ``WorkItem.on_start`` is called (on an engine thread) when the
    task has been sent to its worker.
    """

    name = "process"

    def __init__(
        self,
        workers: int | None = None,
        *,
        target: str = DEFAULT_TARGET,
        extra_path: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        large_frame: int = 1 << 20,
        memory_poll_s: float = 0.01,
        start_timeout_s: float = 60.0,
    ) -> None:
        n = (os.cpu_count() or 1) if workers is None else workers
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"workers must be a positive integer, not {workers!r}")
        if not isinstance(target, str) or ":" not in target:
            raise ValueError(f"target must be 'module:function', not {target!r}")
        if isinstance(extra_path, str):
            raise TypeError("extra_path must be a sequence of directories, not a str")
        if large_frame < 1:
            raise ValueError("large_frame must be positive")
        self.workers = n
        self.target = target
        self.extra_path = tuple(os.path.abspath(p) for p in extra_path)
        self.env = dict(env or {})
        self.python = python or sys.executable
        self.large_frame = large_frame
        self.memory_poll_s = memory_poll_s
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._pools: dict[Any, _Pool] = {}
        self._tasks: dict[str, _Task] = {}
        self._running = 0
        self._started = False
        self._closing = False

    # -- the Engine contract ------------------------------------------------

    def start(self) -> None:
        """Start the default environment's workers; idempotent."""
        with self._lock:
            if self._closing:
                raise RuntimeError("the engine is shut down")
            if self._started:
                return
            self._started = True
        self._pool_for(None, self._default_spec())

    def submit(self, work: WorkItem) -> Future[bytes]:
        """Queue ``work``; its frames are copied before this returns."""
        if not isinstance(work, WorkItem):
            raise TypeError(f"submit takes a WorkItem, not {type(work).__name__}")
        if not isinstance(work.task_id, str):
            raise TypeError(f"a task id is a str, not {type(work.task_id).__name__}")
        if not isinstance(work.limits, ResourceLimits):
            raise TypeError("WorkItem.limits must be a ResourceLimits")
        if not self._started:
            self.start()
        future: Future[bytes] = Future()
        try:
            key, spec = self._environment(work.environment)
        except _StartFailed as exc:
            env = work.environment if isinstance(work.environment, dict) else {}
            future.set_exception(
                EnvironmentUnavailable(
                    work.task_id,
                    _str_or_none(env.get("type")),
                    _str_or_none(env.get("location")),
                    str(exc),
                )
            )
            return future
        pool = self._pool_for(key, spec)
        inline, specs, segments = self._copy_frames(work.packet)
        task = _Task(
            work.task_id,
            inline,
            specs,
            segments,
            work.limits,
            future,
            pool,
            work.on_start,
        )
        with self._lock:
            if self._closing:
                _unlink(segments)
                raise RuntimeError("the engine is shut down")
            if work.task_id in self._tasks:
                _unlink(segments)
                raise ValueError(f"task {work.task_id!r} is already in the engine")
            self._tasks[work.task_id] = task
            pool.queue.append(task)
            pool.cv.notify()
        return future

    def cancel(self, task_id: str, *, terminate: bool) -> str:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return "unknown"
            if task.state == "queued":
                task.pool.queue.remove(task)
                task.state = "done"
                del self._tasks[task_id]
                _unlink(task.segments)
                task.future.cancel()
                return "cancelled"
            worker = task.worker
            if not terminate or worker is None:
                return "running"
            # Under the lock: the worker cannot have moved on to another task.
            worker.signal(TaskTerminated(task_id))
        worker.kill_container()
        return "terminated"

    def status(self) -> EngineStatus:
        with self._lock:
            pools = list(self._pools.values())
            return EngineStatus(
                workers=sum(w.alive() for p in pools for w in p.workers),
                queued=sum(len(p.queue) for p in pools),
                running=self._running,
                capacity=sum(len(p.threads) for p in pools) or self.workers,
            )

    def worker_pids(self) -> list[int]:
        """The pids of the live workers (of container workers: the runtime
        client's), for monitoring."""
        with self._lock:
            workers = [w for p in self._pools.values() for w in p.workers]
        return sorted(w.pid for w in workers if w.alive())

    def shutdown(self, wait: bool = True) -> None:
        """Stop every worker and reap it.  ``wait``: queued and running tasks
        finish first; otherwise queued tasks are cancelled and running ones
        fail with ``TaskTerminated``.  Idempotent."""
        with self._lock:
            self._closing = True
            pools = list(self._pools.values())
            dropped: list[_Task] = []
            victims: list[tuple[_Worker, str]] = []
            if not wait:
                for p in pools:
                    dropped.extend(p.queue)
                    p.queue.clear()
                for t in self._tasks.values():
                    if t.state == "running" and t.worker is not None:
                        victims.append((t.worker, t.task_id))
                for t in dropped:
                    t.state = "done"
                    self._tasks.pop(t.task_id, None)
            for p in pools:
                p.cv.notify_all()
        for t in dropped:
            _unlink(t.segments)
            t.future.cancel()
        for worker, task_id in victims:
            worker.kill(TaskTerminated(task_id, "the engine shut down"))
        for p in pools:
            for th in p.threads:
                if th.is_alive() and th is not threading.current_thread():
                    th.join()

    # -- internals ----------------------------------------------------------

    def _copy_frames(
        self, packet: Sequence[Any]
    ) -> tuple[list[bytes], list[list[Any]], list[SharedMemory]]:
        inline: list[bytes] = []
        specs: list[list[Any]] = []
        segments: list[SharedMemory] = []
        try:
            for frame in packet:
                view = memoryview(frame)
                if not view.c_contiguous:
                    raise ValueError("packet frames must be contiguous buffers")
                size = view.nbytes
                if size >= self.large_frame:
                    seg = _new_segment(size)
                    segments.append(seg)
                    _fill(seg, view.cast("B"))
                    specs.append([1, size, seg.name])
                else:
                    inline.append(frame if type(frame) is bytes else view.tobytes())
                    specs.append([0, size])
                view.release()
        except BaseException:
            _unlink(segments)
            raise
        return inline, specs, segments

    def _default_spec(self) -> _EnvSpec:
        return _EnvSpec(
            None,
            None,
            (self.python, "-m", "freight.endpoint.worker", "--target", self.target),
            start_timeout_s=self.start_timeout_s,
        )

    def _environment(self, env: object) -> tuple[Any, _EnvSpec]:
        """The pool key and start spec for ``env``; ``_StartFailed`` if it is
        not one this engine can use."""
        if env is None:
            return None, self._default_spec()
        if not isinstance(env, Mapping):
            raise _StartFailed(f"an environment is a dict, not {type(env).__name__}")
        kind = env.get("type")
        location = env.get("location")
        if not isinstance(location, str) or not location:
            raise _StartFailed("the environment has no 'location'")
        worker_args = ("-m", "freight.endpoint.worker", "--target", self.target)
        if kind == "python":
            exe = shutil.which(location) if os.sep not in location else location
            if exe is None or not os.path.isfile(exe) or not os.access(exe, os.X_OK):
                raise _StartFailed(f"no Python interpreter at {location!r}")
            exe = os.path.abspath(exe)
            spec = _EnvSpec(
                "python",
                location,
                (exe, *worker_args),
                start_timeout_s=self.start_timeout_s,
            )
            return ("python", exe), spec
        if kind in CONTAINER_TYPES:
            assert isinstance(kind, str)
            runtime = "apptainer" if kind == "singularity" else kind
            exe = shutil.which(runtime) or (
                shutil.which("singularity") if runtime == "apptainer" else None
            )
            if exe is None:
                raise _StartFailed(
                    f"the container runtime {runtime!r} is not installed"
                )
            python = env.get("python", "python3")
            options = env.get("options", [])
            mount = env.get("mount_freight", True)
            if not isinstance(python, str) or not (
                isinstance(options, list) and all(isinstance(o, str) for o in options)
            ):
                raise _StartFailed("'python' must be a str and 'options' a list of str")
            command = self._container_command(
                runtime, exe, location, python, list(options), bool(mount)
            )
            spec = _EnvSpec(
                kind,
                location,
                command,
                container=True,
                runtime=exe,
                start_timeout_s=max(self.start_timeout_s, 120.0),
            )
            return (kind, location, python, tuple(options), bool(mount)), spec
        raise _StartFailed(
            f"unknown environment type {kind!r} (known: python, "
            + ", ".join(sorted(CONTAINER_TYPES))
            + ")"
        )

    def _container_command(
        self,
        runtime: str,
        exe: str,
        image: str,
        python: str,
        options: list[str],
        mount: bool,
    ) -> tuple[str, ...]:
        import freight

        mounts: list[tuple[str, str]] = []
        path: list[str] = []
        for i, p in enumerate(self.extra_path):
            mounts.append((p, f"/opt/freight-extra/{i}"))
            path.append(f"/opt/freight-extra/{i}")
        if mount:
            src = os.path.dirname(os.path.abspath(freight.__file__))
            mounts.append((src, "/opt/freight-src/freight"))
            path.append("/opt/freight-src")
        pythonpath = ":".join(path)
        worker = (python, "-m", "freight.endpoint.worker", "--target", self.target)
        if runtime == "apptainer":
            cmd = [exe, "exec", "--cleanenv"]
            for host, inside in mounts:
                cmd += ["--bind", f"{host}:{inside}:ro"]
            if pythonpath:
                cmd += ["--env", f"PYTHONPATH={pythonpath}"]
            for k, v in self.env.items():
                cmd += ["--env", f"{k}={v}"]
            return (*cmd, *options, image, *worker)
        cmd = [exe, "run", "--rm", "-i", "--name", "{name}"]
        for host, inside in mounts:
            cmd += ["-v", f"{host}:{inside}:ro"]
        if pythonpath:
            cmd += ["-e", f"PYTHONPATH={pythonpath}"]
        for k, v in self.env.items():
            cmd += ["-e", f"{k}={v}"]
        return (*cmd, *options, image, *worker)

    def _pool_for(self, key: Any, spec: _EnvSpec) -> _Pool:
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                return pool
            if self._closing:
                raise RuntimeError("the engine is shut down")
            pool = self._pools[key] = _Pool(self, spec, self.workers)
        pool.start()
        return pool

    def _spawn(self, spec: _EnvSpec) -> _Worker:
        """Start a worker for ``spec`` and wait for its hello; ``_StartFailed``."""
        name: str | None = None
        command = list(spec.command)
        if spec.container:
            name = f"freight-worker-{uuid.uuid4().hex[:12]}"
            command = [a.replace("{name}", name) for a in command]
        environ = os.environ.copy()
        environ.update(self.env)
        if self.extra_path and not spec.container:
            old = environ.get("PYTHONPATH")
            environ["PYTHONPATH"] = os.pathsep.join(
                [*self.extra_path, *([old] if old else [])]
            )
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environ,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as exc:
            raise _StartFailed(f"cannot start {command[0]!r}: {exc}") from exc
        worker = _Worker(proc, name)
        poller = select.poll()  # not select(): descriptors may exceed FD_SETSIZE
        poller.register(worker.fd_from, select.POLLIN | select.POLLHUP)
        ready = poller.poll(spec.start_timeout_s * 1000)
        hello = worker.reader.read_message() if ready else None
        if hello is None or not hello[0].get("hello"):
            worker.kill()
            code = worker.reap()
            what = (
                f"did not start within {spec.start_timeout_s} s"
                if not ready
                else f"exited with code {code} before it was ready"
            )
            tail = "\n".join(worker.stderr_tail)
            raise _StartFailed(
                f"the worker ({' '.join(command[:1])}) {what}"
                + (f"; its stderr ends with:\n{tail}" if tail else "")
            )
        worker.hello = hello[0]
        return worker

    def _slot(self, pool: _Pool) -> None:
        """One worker slot: start a worker, feed it tasks, replace it if it dies."""
        worker: _Worker | None = None
        prestart = pool.spec.env_type is None
        try:
            while True:
                with self._lock:
                    while not pool.queue and not self._closing:
                        if worker is None and prestart:
                            break
                        pool.cv.wait()
                    if self._closing and not pool.queue:
                        return
                if worker is not None and not worker.alive():
                    with self._lock:
                        pool.workers.discard(worker)
                    worker.reap()
                    worker = None
                if worker is None:
                    try:
                        worker = self._spawn(pool.spec)
                    except _StartFailed as exc:
                        self._fail_next(pool, str(exc))
                        prestart = False
                        continue
                    with self._lock:
                        pool.workers.add(worker)
                    prestart = pool.spec.env_type is None
                    continue
                with self._lock:
                    if not pool.queue:
                        continue
                    task = pool.queue.popleft()
                    task.state = "running"
                    task.worker = worker
                    self._running += 1
                try:
                    usable = self._run(worker, task)
                except Exception as exc:  # a bug or a garbled reply: fail safe
                    usable = False
                    worker.kill()
                    self._abandon(task, exc)
                if not usable:
                    with self._lock:
                        pool.workers.discard(worker)
                    worker.reap()
                    worker = None
        finally:
            if worker is not None:
                with self._lock:
                    pool.workers.discard(worker)
                worker.close()

    def _abandon(self, task: _Task, error: Exception) -> None:
        """Fail ``task`` with ``error`` if it is not finished yet."""
        with self._lock:
            if task.state != "done":
                self._running -= task.state == "running"
                task.state = "done"
                self._tasks.pop(task.task_id, None)
        _unlink(task.segments)
        if not task.future.done():
            try:
                if task.future.running() or task.future.set_running_or_notify_cancel():
                    task.future.set_exception(error)
            except Exception:  # resolved meanwhile
                pass

    def _fail_next(self, pool: _Pool, reason: str) -> None:
        """Fail the next queued task of ``pool``: its environment is unusable."""
        with self._lock:
            if not pool.queue:
                return
            task = pool.queue.popleft()
            task.state = "done"
            self._tasks.pop(task.task_id, None)
        _unlink(task.segments)
        if task.future.set_running_or_notify_cancel():
            task.future.set_exception(
                EnvironmentUnavailable(
                    task.task_id, pool.spec.env_type, pool.spec.location, reason
                )
            )

    def _run(self, worker: _Worker, task: _Task) -> bool:
        """Run ``task`` on ``worker``; whether the worker is still usable."""
        if task.future.cancelled():  # cancelled through the future itself
            with self._lock:
                self._running -= 1
                task.state = "done"
                self._tasks.pop(task.task_id, None)
            _unlink(task.segments)
            return True
        header = pack({"t": task.task_id, "f": task.specs}, sum(map(len, task.inline)))
        try:
            write_all(worker.fd_to, [header, *task.inline])
        except OSError:
            # The worker died before it got the task: the task never started,
            # so it goes back to the head of the queue, unless it was the task
            # that was cancelled with terminate.
            reason = worker.kill_reason
            stopped = reason is not None and reason.task_id == task.task_id
            with self._lock:
                self._running -= 1
                if stopped:
                    task.state = "done"
                    self._tasks.pop(task.task_id, None)
                else:
                    task.state = "queued"
                    task.worker = None
                    task.pool.queue.appendleft(task)
            if stopped:
                assert reason is not None
                _unlink(task.segments)
                if task.future.set_running_or_notify_cancel():
                    task.future.set_exception(reason)
            return False
        task.inline = []
        running = task.future.set_running_or_notify_cancel()
        if running and task.on_start is not None:
            try:
                task.on_start()
            except Exception:  # a callback must not stop the slot
                pass
        reply = self._wait_reply(worker, task)
        with self._lock:
            self._running -= 1
            task.state = "done"
            self._tasks.pop(task.task_id, None)
        _unlink(task.segments)
        if reply is None:
            code = worker.reap()
            error = worker.kill_reason or _lost(task.task_id, worker, code)
            if running:
                task.future.set_exception(error)
            return False
        head, body = reply
        if running:
            if head.get("ok"):
                task.future.set_result(body.tobytes())
            else:
                task.future.set_exception(_remote_error(head.get("e")))
        return True

    def _wait_reply(
        self, worker: _Worker, task: _Task
    ) -> tuple[dict[str, Any], memoryview] | None:
        """The worker's reply, or ``None`` if it died (or was killed for a limit)."""
        timeout = task.limits.timeout_s
        memory = task.limits.memory_mb
        if memory is not None and task.pool.spec.container:
            memory = None
        if timeout is None and memory is None:
            return worker.reader.read_message()
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = select.poll()
        poller.register(worker.fd_from, select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            wait = self.memory_poll_s if memory is not None else None
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                wait = left if wait is None else min(wait, left)
            assert wait is not None
            if worker.reader.pending() or poller.poll(wait * 1000):
                return worker.reader.read_message()
            if memory is not None:
                used = worker.rss_mb()
                if used is not None and used > memory:
                    worker.kill(MemoryLimitExceeded(task.task_id, memory, used))
                    return worker.reader.read_message()
            if deadline is not None and time.monotonic() >= deadline:
                assert timeout is not None
                worker.kill(TaskTimeout(task.task_id, timeout))
                return worker.reader.read_message()


def _lost(task_id: str, worker: _Worker, code: int) -> WorkerLost:
    """What ``code`` (a ``Popen.returncode``) says about a dead worker."""
    tail = [line for line in worker.stderr_tail if line.strip()]
    detail = f"its stderr ends with: {tail[-1]}" if tail else None
    if code < 0:
        return WorkerLost(task_id, worker.pid, None, signal_name(-code), detail)
    if worker.name is not None and code > 128:
        # A container runtime reports a signal inside as 128 + its number.
        return WorkerLost(task_id, worker.pid, code, signal_name(code - 128), detail)
    return WorkerLost(task_id, worker.pid, code, None, detail)


def _remote_error(record: object) -> Exception:
    """The exception the target raised, from its ``freight.exception/1`` record."""
    from freight.serialize import exception_from_dict

    try:
        return exception_from_dict(
            record, allowed_modules=_allowed_modules(), traceback_note=True
        )
    except Exception as exc:
        return RuntimeError(
            f"the worker's target failed and its error is unreadable: {exc}"
        )


_segment_numbers = itertools.count()


def segment_prefix() -> str:
    """How the names of this process's segments begin (``/dev/shm/NAME``)."""
    return f"freight_{os.getpid()}_"


def _new_segment(size: int) -> SharedMemory:
    """A new segment named ``freight_PID_N[_R]``, so leaks are attributable."""
    base = f"{segment_prefix()}{next(_segment_numbers)}"
    try:
        return SharedMemory(base, create=True, size=size)
    except FileExistsError:  # a stale one from an earlier process with this pid
        return SharedMemory(f"{base}_{uuid.uuid4().hex[:8]}", create=True, size=size)


def _fill(seg: SharedMemory, data: memoryview) -> None:
    """Copy ``data`` into the new segment ``seg`` and unmap it here.  ``pwrite``
    on its descriptor is about twice as fast as a copy through the mapping (the
    kernel fills the pages without a page fault each)."""
    fd = getattr(seg, "_fd", -1)
    if isinstance(fd, int) and fd >= 0:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], done)
    else:  # pragma: no cover - another SharedMemory implementation
        assert seg.buf is not None
        seg.buf[: len(data)] = data
    seg.close()


def _unlink(segments: list[SharedMemory]) -> None:
    for seg in segments:
        try:
            seg.unlink()
        except FileNotFoundError:
            pass
    segments.clear()


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _allowed_modules() -> frozenset[str]:
    from freight.serialize import DEFAULT_ALLOWED_MODULES

    return frozenset(DEFAULT_ALLOWED_MODULES) | {"freight.endpoint.errors"}
