"""Will this function survive the trip?  Decode and call it in a fresh subprocess.

``ComputeSerializer.check_strategies`` round-trips a function in the caller's own
process, where everything the function leans on is still there: names typed into
``__main__``, modules found through the caller's ``sys.path`` additions, the working
directory.  The receiving process has none of that.  ``check_isolated`` answers the
question the way the receiver would: it sends the message (``pack_buffers`` of
function, args and kwargs in the text envelope) to a fresh ``python -I`` subprocess,
which decodes it with a ``ComputeSerializer`` using the same strategies and
allowlist, calls the function, and sends the result back through the data strategy
-- or the failure as structured data (``ErrorInfo``: type, message, traceback text,
cause chain).  The verdict is an ``IsolatedCheck``: the ``Stage`` it reached and, on
failure, a ``reason`` in a sentence a user can act on, derived from the error by a
table of known failures (which ``freight.serialize.explain`` shares).

What the subprocess sees -- the contract ``check_isolated`` documents and the reason
it catches what ``check_strategies`` cannot:

* the interpreter ``python`` (default ``sys.executable``) started with ``-I``: every
  ``PYTHON*`` environment variable (``PYTHONPATH``, ``PYTHONHOME``, ...) is ignored,
  there is no user site-packages, and neither the caller's current directory nor a
  script directory is on ``sys.path``.  What remains is the standard library and the
  interpreter's site-packages, ``.pth`` files included -- so installed distributions,
  editable installs among them, are importable, and ``freight`` itself must be one;
* then the directories given as ``pythonpath``, prepended to ``sys.path`` in order
  before anything is decoded -- the one explicit way to let the child import a module
  that is not installed;
* a ``__main__`` that is freight's child program: nothing the caller defined in its
  own ``__main__`` exists there;
* the strategies registered through entry points in that environment (not those
  registered at run time in the caller), chosen by identifier: the caller's code
  and data strategies and its allowlist; a configured strategy instance's own
  settings do not travel, nor does anything else about the caller's serializer;
* the caller's other environment variables; its working directory is ``cwd``, by
  default a new empty temporary directory removed afterwards; its stdin is empty, and
  whatever the function prints (stdout and stderr) is captured as ``output``, apart
  from the reply, which travels on a private copy of the original stdout.

The child is one process per check, killed (with its process group, on POSIX) when
``timeout`` expires.  This module imports nothing from ``freight.serialize.explain``
(which builds on it).  Nothing in it names a concrete strategy: strategies are
reached through the registry and the facade's public API only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from freight.serialize.errors import (
    ClosureNotCarried,
    MemberFailed,
    MissingGlobal,
    SerdeError,
    SerializationError,
    SourceDoesNotDefine,
    SourceUnavailable,
    StrategyNotAllowed,
    UnknownStrategy,
)
from freight.serialize.facade import ComputeSerializer
from freight.serialize.remote_errors import (
    FORMAT,
    ExceptionRecord,
    exception_from_dict,
    exception_to_dict,
    read_exception_record,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "CheckError",
    "ErrorInfo",
    "IsolatedCheck",
    "Stage",
    "check_isolated",
    "check_isolated_call",
]

#: Seconds a child process may take, start-up included, before it is killed.
DEFAULT_TIMEOUT = 60.0

#: Version of the parent/child message layout (a JSON header line, then the message).
_PROTOCOL = 1
#: How the child starts: by importing this module from the installed ``freight``.
#: If that import fails, the child still answers in the protocol, with the
#: ``ModuleNotFoundError`` as a ``freight.exception/1`` record, so the caller
#: knows the failure by its type and ``name`` rather than from stderr text.
_BOOTSTRAP = """\
try:
    from freight.serialize.isolation import _child_main
except ModuleNotFoundError as e:
    import json, sys
    sys.stdout.write(json.dumps({"protocol": PROTOCOL, "stage": "start", "error": {
        "format": "freight.exception/1", "type": "ModuleNotFoundError",
        "module": "builtins", "qualname": "ModuleNotFoundError",
        "message": str(e), "fields": {"name": e.name}}}))
else:
    _child_main()
""".replace("PROTOCOL", str(_PROTOCOL))
#: How much of the child's captured output a result keeps (the end of it).
_OUTPUT_LIMIT = 8000
#: How many causes of an error ``ErrorInfo`` follows.
_MAX_CHAIN = 16
#: The longest a derived reason's quoted error text (or a shown repr) gets.
_EXCERPT = 200

StrPath: TypeAlias = "str | os.PathLike[str]"


class Stage(StrEnum):
    """How far a round trip got: where it failed, or ``DONE``."""

    #: The function or its arguments could not be serialized in the caller.
    SERIALIZE = "serialize"
    #: The child process could not start, or exited without reporting.
    START = "start"
    #: The receiving side could not rebuild the function or its arguments.
    DESERIALIZE = "deserialize"
    #: The rebuilt function was called and raised (or, in ``explain``, its outcome
    #: differed from the original's).
    CALL = "call"
    #: The call returned, but its result could not be brought back.
    RESULT = "result"
    #: The child did not finish within the timeout and was killed.
    TIMEOUT = "timeout"
    #: Everything worked.
    DONE = "done"


class CheckError(SerdeError):
    """An isolated check failed; ``check`` holds the full ``IsolatedCheck``.

    Raised by ``IsolatedCheck.raise_for_error()`` from the remote exception, rebuilt
    by ``freight.serialize.remote_errors`` (its original type when that is safe,
    else a ``RemoteExecutionError``), so the remote traceback shows as its cause.
    """

    def __init__(
        self, check: IsolatedCheck, *, cause_shows_traceback: bool = False
    ) -> None:
        reason = f"isolated check with {check.strategy} failed: {check.reason}"
        if (
            not cause_shows_traceback
            and check.error is not None
            and check.error.traceback
        ):
            reason += "\n\nRemote traceback:\n" + check.error.format().rstrip()
        super().__init__(reason)
        self.check = check


# -- errors as data ----------------------------------------------------------------


@dataclass(frozen=True)
class ErrorInfo:
    """An exception as plain data: a view of its ``freight.exception/1`` record
    (``freight.serialize.remote_errors``), readable without unpickling.

    ``traceback`` is this exception's own frames and line; ``cause`` is the
    exception it was raised from (``__cause__``, or the implicit ``__context__``
    unless suppressed; ``explicit`` says which); ``members`` are an exception
    group's exceptions; ``fields`` describe the failure as data (its type's
    ``error_fields``); ``format()`` renders the chain the way Python prints it.
    """

    type_name: str
    module: str
    message: str
    traceback: str = ""
    cause: ErrorInfo | None = None
    #: ``cause`` is ``__cause__`` (``raise ... from``), not an implicit context.
    explicit: bool = True
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False)
    members: tuple[ErrorInfo, ...] = ()
    #: The ``exception_to_dict`` record this view was read from, if any.
    record: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_exception(cls, error: BaseException, *, skip_frames: int = 0) -> ErrorInfo:
        """Capture ``error`` and its chain; ``skip_frames`` drops the outermost
        traceback entries (the harness that made the call) from ``error``."""
        for _ in range(skip_frames):
            tb = error.__traceback__
            if tb is not None and tb.tb_next is not None:
                error.__traceback__ = tb.tb_next
        return cls.from_dict(exception_to_dict(error))

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ErrorInfo:
        """Read an ``exception_to_dict`` record with ``read_exception_record``.
        Raises ``DeserializationError`` if it is malformed."""
        return cls._from_record(read_exception_record(dict(record)), dict(record))

    @classmethod
    def _from_record(
        cls,
        rec: ExceptionRecord[Any],
        raw: Mapping[str, Any] | None = None,
        depth: int = 0,
    ) -> ErrorInfo:
        linked = rec.cause or (None if rec.suppress_context else rec.context)
        below = depth < _MAX_CHAIN
        return cls(
            rec.qualname or rec.type_name,
            rec.module,
            rec.message,
            rec.traceback or "",
            cls._from_record(linked, None, depth + 1) if linked and below else None,
            rec.cause is not None,
            dict(rec.fields),
            tuple(cls._from_record(m, None, depth + 1) for m in rec.exceptions or ())
            if below
            else (),
            raw,
        )

    def is_a(self, cls: type[BaseException]) -> bool:
        """Whether this error's type is ``cls`` itself (by module and qualname)."""
        return self.module == cls.__module__ and self.type_name == cls.__qualname__

    @property
    def root(self) -> ErrorInfo:
        """The innermost error of the chain: usually the one that explains."""
        error = self
        while error.cause is not None:
            error = error.cause
        return error

    def format(self) -> str:
        """The chain's tracebacks, innermost first, as Python prints them."""
        own = self.traceback or f"{self}\n"
        if self.cause is None:
            return own
        link = (
            "The above exception was the direct cause of the following exception:"
            if self.explicit
            else "During handling of the above exception, another exception occurred:"
        )
        return f"{self.cause.format()}\n{link}\n\n{own}"

    def rebuild(self) -> Exception | None:
        """The exception again, as ``remote_errors.exception_from_dict`` rebuilds
        it; ``None`` if there is no record or it cannot be read."""
        if self.record is None:
            return None
        try:
            return exception_from_dict(dict(self.record))
        except SerdeError:
            return None

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name

    def to_dict(self) -> dict[str, Any]:
        """The ``freight.exception/1`` record (JSON-able); ``from_dict`` reads it."""
        if self.record is not None:
            return dict(self.record)
        return {"format": FORMAT, **self._object()}

    def _object(self) -> dict[str, Any]:
        return {
            "type": self.type_name.rpartition(".")[2],
            "module": self.module,
            "qualname": self.type_name,
            "message": self.message,
            "traceback": self.traceback or None,
            "cause": None if self.cause is None else self.cause._object(),
            "fields": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in self.fields.items()
            },
            "exceptions": [m._object() for m in self.members] if self.members else None,
        }


# -- isolated checks -----------------------------------------------------------------


@dataclass(frozen=True)
class IsolatedCheck:
    """The outcome of decoding and calling a function in a fresh subprocess.

    ``ok`` is true when the child rebuilt the function and its arguments, the call
    returned, and the result came back; ``result`` is then that result, decoded by
    the caller's serializer.  Otherwise ``stage`` says where it stopped, ``error``
    holds the (remote, when it happened in the child) exception as data, and
    ``reason`` says why in a sentence.
    """

    #: The code strategy's registered name.
    strategy: str
    stage: Stage
    result: Any = None
    error: ErrorInfo | None = None
    reason: str | None = None
    #: What the function (and the child) wrote to stdout and stderr; the end of it.
    output: str = ""
    returncode: int | None = None
    #: Time the child spent rebuilding the function from its payload.
    decode_seconds: float | None = None
    #: Time the call took in the child.
    call_seconds: float | None = None
    #: Wall time of the whole child process, start-up included.
    elapsed_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.stage is Stage.DONE

    def raise_for_error(self) -> Any:
        """Return ``result`` if the check passed, else raise ``CheckError`` carrying
        this check, from the rebuilt remote exception, whose notes carry the remote
        traceback (the message does when there is nothing to rebuild)."""
        if not self.ok:
            cause = None if self.error is None else self.error.rebuild()
            raise CheckError(self, cause_shows_traceback=cause is not None) from cause
        return self.result


@dataclass(frozen=True)
class _ChildOptions:
    timeout: float
    pythonpath: tuple[str, ...]
    python: str
    cwd: str | None


def check_isolated(
    serializer: ComputeSerializer,
    function: Callable[..., Any],
    /,
    *args: Any,
    timeout: float = DEFAULT_TIMEOUT,
    pythonpath: Iterable[StrPath] = (),
    python: StrPath | None = None,
    cwd: StrPath | None = None,
    **kwargs: Any,
) -> IsolatedCheck:
    """Serialize ``function(*args, **kwargs)`` with ``serializer``, then decode and
    call it in a fresh ``python -I`` subprocess (see the module docstring for exactly
    what that process sees).

    Returns an ``IsolatedCheck`` for every outcome of the child -- decode failure,
    exception in the call, crash, timeout -- and never raises for them; call its
    ``raise_for_error()`` to turn a failure into ``CheckError``.  Raises
    ``SerializationError`` if the message cannot be made in the first place (nothing
    was sent), as ``check_strategies`` does.  ``timeout``, ``pythonpath``, ``python``
    and ``cwd`` are this function's own options; to pass the called function a
    keyword argument with one of those names, use ``check_isolated_call``.
    """
    return check_isolated_call(
        serializer,
        function,
        args,
        kwargs,
        timeout=timeout,
        pythonpath=pythonpath,
        python=python,
        cwd=cwd,
    )


def check_isolated_call(
    serializer: ComputeSerializer,
    function: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    pythonpath: Iterable[StrPath] = (),
    python: StrPath | None = None,
    cwd: StrPath | None = None,
) -> IsolatedCheck:
    """``check_isolated`` with the call's arguments given as a sequence and a
    mapping, so no keyword argument can collide with an option."""
    options = _child_options(timeout, pythonpath, python, cwd)
    call_args, call_kwargs = tuple(args), dict(kwargs or {})
    try:
        packed = serializer.pack_buffers(
            [
                serializer.serialize(function),
                serializer.serialize(call_args),
                serializer.serialize(call_kwargs),
            ]
        )
    except Exception as e:
        raise SerializationError(f"check_isolated failed to serialize: {e}") from e
    return _run_child(serializer, packed, options, _subject(function))


def _child_options(
    timeout: float,
    pythonpath: Iterable[StrPath],
    python: StrPath | None,
    cwd: StrPath | None,
) -> _ChildOptions:
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    # Absolute, because the child runs in another directory.
    paths = tuple(os.path.abspath(os.fspath(p)) for p in pythonpath)
    interpreter = os.fspath(python) if python is not None else sys.executable
    return _ChildOptions(
        timeout, paths, interpreter, None if cwd is None else os.fspath(cwd)
    )


def _run_child(
    serializer: ComputeSerializer,
    packed: str,
    options: _ChildOptions,
    subject: _Subject,
) -> IsolatedCheck:
    """Send ``packed`` to a fresh child; the ``IsolatedCheck`` of what came back."""
    code = serializer.code_serializer
    data = serializer.data_serializer
    header = {
        "protocol": _PROTOCOL,
        "code": code.identifier,
        "data": data.identifier,
        "allow": sorted(
            serializer.registry.resolve(cls).identifier
            for cls in serializer.allowed_deserializer_types
        ),
        "pythonpath": list(options.pythonpath),
    }
    message = (json.dumps(header) + "\n" + packed).encode("utf-8", "surrogatepass")

    def verdict(
        stage: Stage,
        error: ErrorInfo | None = None,
        *,
        output: bytes = b"",
        returncode: int | None = None,
        reply: Mapping[str, Any] | None = None,
        result: Any = None,
    ) -> IsolatedCheck:
        timings = reply or {}
        return IsolatedCheck(
            strategy=code.name,
            stage=stage,
            result=result,
            error=error,
            reason=None
            if stage is Stage.DONE
            else _reason(stage, error, serializer, subject, timeout=options.timeout),
            output=_tail(output),
            returncode=returncode,
            decode_seconds=_float_or_none(timings.get("decode_seconds")),
            call_seconds=_float_or_none(timings.get("call_seconds")),
            elapsed_seconds=time.perf_counter() - started,
        )

    started = time.perf_counter()
    with _working_directory(options.cwd) as cwd:
        try:
            proc = subprocess.Popen(
                [options.python, "-I", "-c", _BOOTSTRAP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                # Its own process group, so a timeout kills what it spawned too.
                start_new_session=os.name == "posix",
            )
        except OSError as e:
            return verdict(Stage.START, ErrorInfo.from_exception(e))
        try:
            try:
                out, err = proc.communicate(message, timeout=options.timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                out, err = _drain(proc)
                return verdict(Stage.TIMEOUT, output=err, returncode=proc.returncode)
        finally:
            if proc.poll() is None:  # interrupted in the caller: leave nothing behind
                _kill(proc)
                proc.wait()

    try:
        reply = json.loads(out)
        if not isinstance(reply, dict) or reply.get("protocol") != _PROTOCOL:
            raise ValueError("not a reply from freight's child program")
        stage = Stage(reply["stage"])
    except (ValueError, KeyError, TypeError):
        lines = err.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else "no output"
        error = ErrorInfo(
            "ChildProcessError",
            "builtins",
            f"the child process exited with status {proc.returncode} without"
            f" reporting: {last}",
            traceback=_tail(err),
        )
        return verdict(Stage.START, error, output=err, returncode=proc.returncode)
    if stage is not Stage.DONE:
        try:
            error = ErrorInfo.from_dict(reply["error"])
        except (KeyError, TypeError, SerdeError) as e:
            error = ErrorInfo.from_exception(e)
        return verdict(
            stage, error, output=err, returncode=proc.returncode, reply=reply
        )
    try:
        result = serializer.deserialize(reply["result"])
    except Exception as e:
        return verdict(
            Stage.RESULT,
            ErrorInfo.from_exception(e),
            output=err,
            returncode=proc.returncode,
            reply=reply,
        )
    return verdict(
        Stage.DONE, output=err, returncode=proc.returncode, reply=reply, result=result
    )


@contextmanager
def _working_directory(cwd: str | None) -> Iterator[str]:
    if cwd is not None:
        yield cwd
        return
    with tempfile.TemporaryDirectory(prefix="freight-check-") as tmp:
        yield tmp


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child and, on POSIX, every process in its group."""
    if os.name == "posix":
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with suppress(ProcessLookupError):
        proc.kill()


def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What a killed child wrote; gives up if something still holds its pipes."""
    try:
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""


def _tail(output: bytes) -> str:
    text = output.decode("utf-8", "replace")
    return text if len(text) <= _OUTPUT_LIMIT else "..." + text[-_OUTPUT_LIMIT:]


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# -- the child program ----------------------------------------------------------------


def _child_main() -> None:  # pragma: no cover - runs in the child process
    """Read one message on stdin, decode, call, reply with one JSON object.

    The reply goes to a private duplicate of the original stdout; file descriptor 1
    is pointed at stderr first, so nothing the function prints can corrupt it.
    """
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    reply = _child_run(sys.stdin.buffer.read())
    sys.stdout.flush()
    sys.stderr.flush()
    with os.fdopen(reply_fd, "wb") as channel:
        channel.write(json.dumps(reply).encode("ascii"))
    # Skip interpreter teardown: threads or atexit handlers the function left
    # behind must not keep the child alive after it has answered.
    os._exit(0)


def _child_run(message: bytes) -> dict[str, Any]:
    """Decode, call and encode the result; the reply as a JSON-able dict."""

    def failure(stage: Stage, error: BaseException, skip: int = 0) -> dict[str, Any]:
        reply["stage"] = stage.value
        reply["error"] = ErrorInfo.from_exception(error, skip_frames=skip).to_dict()
        return reply

    reply: dict[str, Any] = {"protocol": _PROTOCOL}
    try:
        head, _, body = message.partition(b"\n")
        header = json.loads(head)
        if header.get("protocol") != _PROTOCOL:
            raise ValueError(
                f"protocol {header.get('protocol')!r} from the caller, this freight"
                f" speaks {_PROTOCOL}: install the same freight in both"
            )
        packed = body.decode("utf-8", "surrogatepass")
        sys.path[:0] = [str(p) for p in header["pythonpath"]]
    except Exception as e:
        return failure(Stage.START, e)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            serde = ComputeSerializer(
                strategy_code=header["code"],
                strategy_data=header["data"],
                allowed_deserializer_types=header["allow"] or None,
                cache_code=False,
            )
        function, args, kwargs = _decode_call(serde, packed, reply)
    except Exception as e:
        return failure(Stage.DESERIALIZE, e)
    started = time.perf_counter()
    try:
        result = function(*args, **kwargs)
    except BaseException as e:  # SystemExit too: it is the function's outcome
        return failure(Stage.CALL, e, skip=1)
    finally:
        reply["call_seconds"] = time.perf_counter() - started
    try:
        # Results travel as data, as they do from an endpoint.
        reply["result"] = serde.data_serializer.serialize(result)
    except Exception as e:
        return failure(Stage.RESULT, e)
    reply["stage"] = Stage.DONE.value
    return reply


def _decode_call(
    serde: ComputeSerializer, packed: str, timings: dict[str, Any]
) -> tuple[Any, Any, Any]:
    """Rebuild function, args and kwargs from a ``pack_buffers`` message, as the
    receiver does; the function's decode time goes in ``timings["decode_seconds"]``
    as soon as it is rebuilt."""
    parts = serde.unpack_buffers(packed)
    if len(parts) != 3:
        raise ValueError(f"expected 3 payloads, got {len(parts)}")
    started = time.perf_counter()
    function = serde.deserialize(parts[0])
    timings["decode_seconds"] = time.perf_counter() - started
    return function, serde.deserialize(parts[1]), serde.deserialize(parts[2])


# -- why it failed --------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    """What a reason may say about the function itself."""

    name: str
    is_lambda: bool = False
    decorated: bool = False


def _subject(function: Callable[..., Any]) -> _Subject:
    name = str(getattr(function, "__qualname__", None) or type(function).__name__)
    return _Subject(
        name,
        is_lambda=name.rpartition(".")[2] == "<lambda>",
        decorated=hasattr(function, "__wrapped__"),
    )


def _reason(
    stage: Stage,
    error: ErrorInfo | None,
    serializer: ComputeSerializer,
    subject: _Subject,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    arguments: bool = False,
    detail: str | None = None,
) -> str:
    """A sentence saying why a round trip with ``serializer`` failed at ``stage``.

    The sentence comes from the failure's type and fields (``_because``), never
    from the words of its message."""
    if stage is Stage.TIMEOUT:
        return (
            f"did not finish within {timeout:g} s in the child process, which was"
            " killed (a hung or slow call, or decode)"
        )
    if error is None:
        return detail or f"failed at the {stage.value} stage"
    root = error.root
    if stage is Stage.START:
        if root.is_a(ModuleNotFoundError) and _names_freight(root.fields.get("name")):
            return (
                "freight is not importable in a fresh interpreter (python -I ignores"
                " PYTHONPATH and user site-packages): install it there"
            )
        return f"the child process failed before reporting: {_excerpt(str(root))}"
    culprit = _culprit(error)
    failed = [m for m in root.members if m.is_a(MemberFailed)]
    if failed:  # a combined strategy: every member failed; say why for each
        because = "no member worked: " + "; ".join(
            f"{m.fields.get('member')}: "
            + _because(_culprit(m), stage, str(m.fields.get("member")), subject)
            for m in failed
        )
    else:
        because = _because(culprit, stage, serializer.code_serializer.name, subject)
    if stage is Stage.SERIALIZE and arguments:
        data_strategy = serializer.data_serializer.name
        return f"the arguments cannot be serialized with {data_strategy}: {because}"
    if stage is Stage.RESULT:
        return f"the call returned, but its result could not be sent back: {because}"
    if stage is Stage.CALL and because == _excerpt(str(culprit)):
        # No rule knows better than what happened.
        return detail or f"the function raised {because} in the receiving process"
    return because


#: The types ``_because`` has a rule for.
_EXPLAINED: tuple[type[BaseException], ...] = (
    ClosureNotCarried,
    NameError,
    ModuleNotFoundError,
    MissingGlobal,
    SourceUnavailable,
    SourceDoesNotDefine,
    SyntaxError,
    IndentationError,
    StrategyNotAllowed,
    UnknownStrategy,
)


def _culprit(error: ErrorInfo) -> ErrorInfo:
    """The error of ``error``'s chain a reason explains: the innermost one whose
    type a rule knows (a typed failure is raised from the raw error it read, whose
    words alone say less), else the innermost."""
    found = None
    link: ErrorInfo | None = error
    while link is not None:
        if any(link.is_a(known) for known in _EXPLAINED):
            found = link
        link = link.cause
    return found or error.root


def _names_freight(name: object) -> bool:
    return isinstance(name, str) and name.partition(".")[0] == "freight"


def _because(error: ErrorInfo, stage: Stage, strategy: str, subject: _Subject) -> str:
    """Turn one failure into a sentence a user can act on, by its type and fields;
    its own ``"Type: message"`` when no type here is known."""
    f = error.fields
    if (
        subject.is_lambda
        and stage in (Stage.SERIALIZE, Stage.DESERIALIZE)
        and (
            error.is_a(SourceUnavailable)
            or error.is_a(SyntaxError)
            or error.is_a(IndentationError)
            or (error.is_a(SourceDoesNotDefine) and f.get("name") == "<lambda>")
        )
    ):
        return "a lambda has no source of its own; source strategies cannot carry it"
    if error.is_a(ClosureNotCarried):
        names = ", ".join(f.get("names") or ())
        if subject.decorated:
            return (
                "it is decorated, and source strategies cannot carry closures (the"
                f" wrapper captures {names})"
            )
        return f"source strategies cannot carry closures (it captures {names})"
    if error.is_a(NameError):
        return (
            f"NameError: name '{f.get('name')}' is not defined: {strategy} does not"
            " carry the module globals the function uses (imports, helpers,"
            " decorators)"
        )
    if error.is_a(ModuleNotFoundError):
        return (
            f"module '{f.get('name')}' is not importable in the receiving process,"
            f" and {strategy} sent a reference into it rather than the code (install"
            " it there, or pass its directory as pythonpath)"
        )
    if error.is_a(MissingGlobal):
        if f.get("module") == "__main__":
            return (
                f"'{f.get('name')}' is defined in __main__ and was pickled by"
                " reference; the receiving process's __main__ does not define it"
            )
        return (
            f"'{f.get('name')}' was pickled by reference to module"
            f" '{f.get('module')}', which does not define it in the receiving process"
        )
    if error.is_a(SourceUnavailable):
        if f.get("builtin"):
            return "a built-in has no Python source; source strategies need it"
        return (
            "its source code cannot be found (typed interactively, or made by"
            " exec()); source strategies need it"
        )
    if error.is_a(SourceDoesNotDefine):
        return f"the source found for the function does not define '{f.get('name')}'"
    if error.is_a(SyntaxError) or error.is_a(IndentationError):
        return "the source found for the function does not compile on its own"
    if error.is_a(StrategyNotAllowed):
        return f"the deserializer allowlist does not allow {strategy} to decode"
    if error.is_a(UnknownStrategy):
        return f"{strategy} is not registered in the receiving process"
    return _excerpt(str(error))


def _excerpt(text: str) -> str:
    return _clip(" ".join(text.split()))


def _clip(text: str) -> str:
    """``text``, cut to ``_EXCERPT`` characters with ``...`` if it is longer."""
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."
