"""The Globus Compute SDK user guide's client examples, run against freight.client.

Each example is the guide's code as written, apart from:

* the import line (``globus_compute_sdk`` -> ``freight.client`` /
  ``freight.serialize``);
* the endpoint id: the guide hard-codes Globus's tutorial endpoint
  (``4b116d3c-...``) or ``"<your_endpoint_id>"``; here that one assignment names
  the local endpoint of the embedded service;
* waits: where the guide sleeps or leaves the task time to finish ("sit for a
  spell"), the test waits until the task is finished, so assertions are about
  the finished state, and never about time.

Other departures (a syntax error or a sleep of many seconds in the guide) are
marked ``# guide:`` where they are made.

Sources (quoted per example below):

* CLIENT_GUIDE: the SDK user guide with the guide's batch shape, the printed
  ``get_batch_result`` dict and the serialization-strategy section,
  https://github.com/globus/globus-compute/blob/5d2dffc8b99068f91f2c1408d05222fd9fcb5fba/docs/sdk.rst
  (published at https://globus-compute.readthedocs.io/en/latest/sdk.html until
  the March 2025 rewrite);
* CLIENT_GUIDE_NOW: its current version, with 4.19's batch shape,
  https://github.com/globus/globus-compute/blob/845796fc843ee9fe00dd8eb90be0b9dc8acb8054/docs/sdk/client_user_guide.rst
  (https://globus-compute.readthedocs.io/en/latest/sdk/client_user_guide.html);
* EXECUTOR_GUIDE:
  https://github.com/globus/globus-compute/blob/845796fc843ee9fe00dd8eb90be0b9dc8acb8054/docs/sdk/executor_user_guide.rst
  (https://globus-compute.readthedocs.io/en/latest/sdk/executor_user_guide.html).
"""

from __future__ import annotations

import ast
import concurrent.futures
import platform
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from freight.client import Client, Executor
from freight.service.core import ServiceStopped

# The guide's CombinedCode and DillCodeSource are deprecated, in freight as in 4.19.
pytestmark = pytest.mark.filterwarnings("ignore:.* is deprecated:DeprecationWarning")

CLIENT_GUIDE = (
    "https://github.com/globus/globus-compute/blob/"
    "5d2dffc8b99068f91f2c1408d05222fd9fcb5fba/docs/sdk.rst"
)


def _finished(gcc: Client, task_id: str) -> Callable[[], bool]:
    return lambda: not gcc.get_task(task_id)["pending"]


# -- Client User Guide ---------------------------------------------------------------


def test_register_run_get_result(
    freight_home: Path,
    endpoint_id: str,
    capsys: pytest.CaptureFixture[str],
    wait_for: Callable[..., None],
) -> None:
    # CLIENT_GUIDE, "Registering Functions", "Running Functions", "Retrieving
    # Results".
    gcc = Client()

    def platform_func():  # type: ignore[no-untyped-def]
        """Get platform information about this system."""

        import platform

        return platform.platform()

    func_uuid = gcc.register_function(platform_func)

    tutorial_endpoint = endpoint_id  # guide: '4b116d3c-1703-4f8f-9f6f-39921e5864df'
    task_id = gcc.run(endpoint_id=tutorial_endpoint, function_id=func_uuid)

    wait_for(_finished(gcc, task_id), "the task")  # guide: no wait
    try:
        print(gcc.get_result(task_id))
    except Exception as e:
        print("Exception: {}".format(e))  # noqa: UP032 (the guide's code)

    assert capsys.readouterr().out == platform.platform() + "\n"
    assert uuid.UUID(func_uuid) and uuid.UUID(task_id)
    # The description is the docstring.
    assert gcc.get_function(func_uuid)["description"] == (
        "Get platform information about this system."
    )


def test_get_result_while_pending_says_so(
    freight_home: Path, endpoint_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # CLIENT_GUIDE, "Retrieving Results": get_result "will either return the
    # deserialized result of your invocation or raise an exception indicating that
    # the task is still pending".  A task queued behind a blocked one is pending.
    gcc = Client()

    def sleepy(path: str) -> str:
        import os
        import time

        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        return "woke"

    gate = freight_home / f"gate-{uuid.uuid4()}"
    fid = gcc.register_function(sleepy)
    task_id = gcc.run(str(gate), endpoint_id=endpoint_id, function_id=fid)
    try:
        print(gcc.get_result(task_id))
    except Exception as e:
        print("Exception: {}".format(e))  # noqa: UP032 (the guide's code)
    finally:
        gate.touch()
    out = capsys.readouterr().out
    assert out.startswith("Exception: ")
    assert out.strip().split("Task is pending due to ", 1)[1] in (
        "received",
        "waiting-for-ep",
        "waiting-for-nodes",
        "waiting-for-launch",
        "running",
    )


def test_arguments_and_data(
    freight_home: Path,
    endpoint_id: str,
    capsys: pytest.CaptureFixture[str],
    wait_for: Callable[..., None],
) -> None:
    # CLIENT_GUIDE, "Arguments and data".
    gcc = Client()
    tutorial_endpoint = endpoint_id  # guide: '4b116d3c-...'

    def hello(firstname, lastname):  # type: ignore[no-untyped-def]
        """Say hello to someone."""

        return "Hello {} {}".format(firstname, lastname)  # noqa: UP032

    func_id = gcc.register_function(hello)

    task_id = gcc.run(
        "Bob", "Smith", endpoint_id=tutorial_endpoint, function_id=func_id
    )

    wait_for(_finished(gcc, task_id), "the task")  # guide: no wait
    try:
        print(gcc.get_result(task_id))
    except Exception as e:
        print("Exception: {}".format(e))  # noqa: UP032 (the guide's code)

    assert capsys.readouterr().out == "Hello Bob Smith\n"


def test_get_result_reraises_the_exception(
    freight_home: Path,
    endpoint_id: str,
    capsys: pytest.CaptureFixture[str],
    wait_for: Callable[..., None],
) -> None:
    # CLIENT_GUIDE, "Retrieving Results": "If your function raises an exception,
    # get_result() will reraise it."
    gcc = Client()

    def divide(a, b):  # type: ignore[no-untyped-def]
        return a / b

    func_id = gcc.register_function(divide)
    task_id = gcc.run(1, 0, endpoint_id=endpoint_id, function_id=func_id)
    wait_for(_finished(gcc, task_id), "the task")

    try:
        print(gcc.get_result(task_id))
    except Exception as e:
        print("Exception: {}".format(e))  # noqa: UP032 (the guide's code)

    assert capsys.readouterr().out == "Exception: division by zero\n"
    # The original type itself, with the remote traceback attached.
    with pytest.raises(ZeroDivisionError) as info:
        gcc.get_result(task_id)
    remote = info.value.remote_traceback  # type: ignore[attr-defined]
    assert "in divide" in remote and "ZeroDivisionError: division by zero" in remote


def test_sharing_functions_and_descriptions(freight_home: Path) -> None:
    # CLIENT_GUIDE, "Sharing Functions".
    gcc = Client()
    globus_group_id = str(uuid.uuid4())  # guide: <globus_group_id>

    def func():  # type: ignore[no-untyped-def]
        """A function, shared."""
        return 1

    gcc.register_function(func, group=globus_group_id)
    gcc.register_function(func, public=True)

    fid = gcc.register_function(func, description="My function")
    assert gcc.get_function(fid)["description"] == "My function"

    def function_with_docstring():  # type: ignore[no-untyped-def]
        """My function, with a docstring"""
        return "foo"

    fid = gcc.register_function(func)  # description is automatically read ...
    assert gcc.get_function(fid)["description"] == "A function, shared."

    gcx = Executor()
    fut = gcx.submit(function_with_docstring)  # automatically registers the function
    assert fut.result() == "foo"
    registered = gcc.transport.list_functions(1)[0]  # type: ignore[attr-defined]
    assert registered["function_name"] == "function_with_docstring"
    assert registered["description"] == ("My function, with a docstring")
    gcx.shutdown()

    # if both are specified, the argument wins
    fid = gcc.register_function(
        function_with_docstring, description="this has priority over docstrings"
    )
    assert gcc.get_function(fid)["description"] == "this has priority over docstrings"


def test_batch_guide_shape_and_printed_dict(
    freight_home: Path,
    endpoint_id: str,
    capsys: pytest.CaptureFixture[str],
    wait_for: Callable[..., None],
) -> None:
    # CLIENT_GUIDE, "Batching": batch.add(x, endpoint_id=..., function_id=...),
    # batch_run(batch) -> task ids in order; get_batch_result's printed dict.
    gcc = Client()
    tutorial_endpoint = endpoint_id  # guide: '4b116d3c-...'

    def square(x):  # type: ignore[no-untyped-def]
        return x * x

    func_id = gcc.register_function(square)  # guide: func_id from an earlier section

    batch = gcc.create_batch()

    for x in range(0, 5):
        batch.add(x, endpoint_id=tutorial_endpoint, function_id=func_id)

    # batch_run returns a list task ids
    batch_res = gcc.batch_run(batch)

    assert isinstance(batch_res, list) and len(batch_res) == 5
    wait_for(
        lambda: all(not s["pending"] for s in gcc.get_batch_result(batch_res).values()),
        "the batch",
    )  # guide: no wait (its printed output shows some tasks still pending)
    capsys.readouterr()

    results = gcc.get_batch_result(batch_res)
    print(results)

    printed = capsys.readouterr().out
    assert list(results) == batch_res  # keyed by task id, in the order given
    for i, tid in enumerate(batch_res):
        entry = results[tid]
        assert entry["pending"] is False
        assert entry["status"] == "success"
        assert entry["result"] == i * i  # the order of add() is kept
        float(entry["completion_t"])  # a unix time as a string, as printed
        # The guide's printed keys, plus the reference's own "details".
        assert {"pending", "status", "result", "completion_t"} <= set(entry)
        assert set(entry) <= {"pending", "status", "result", "completion_t", "details"}
        assert f"'{tid}': {{'pending': False, 'status': 'success'" in printed


def test_batch_reference_shape(
    freight_home: Path, endpoint_id: str, wait_for: Callable[..., None]
) -> None:
    # CLIENT_GUIDE_NOW, "Batching" ("Example use of Batch objects"), 4.19's shape.
    import pprint
    import time

    gcc = Client()

    def noisy_multiply(x, y, noise=1, offset=0) -> float:  # type: ignore[no-untyped-def]
        import random

        return x * y + random.uniform(offset - noise, offset + noise)

    noisy_fn_id = gcc.register_function(noisy_multiply)
    batch = gcc.create_batch()

    for val in range(7):
        fn_args = (val + 3, val)
        fn_kwargs = {"noise": val // 5, "offset": val + 1}  # guide: offset=val + 1

        batch.add(noisy_fn_id, args=fn_args, kwargs=fn_kwargs)

    # See what data structure will be sent to the API with .prepare()
    pprint.pformat(batch.prepare())

    endpoint_id = endpoint_id  # guide: endpoint_id of the reader's endpoint
    batch_res = gcc.batch_run(endpoint_id, batch)

    del time  # guide: time.sleep(60); the test waits for the tasks instead
    task_ids = []
    for fn_task_list in batch_res["tasks"].values():
        task_ids.extend(fn_task_list)
    wait_for(
        lambda: all(not s["pending"] for s in gcc.get_batch_result(task_ids).values()),
        "the batch",
    )

    # then pass that list to `get_batch_result()`
    batch_status = gcc.get_batch_result(task_ids)

    assert set(batch_res) == {"request_id", "task_group_id", "endpoint_id", "tasks"}
    assert batch_res["endpoint_id"] == endpoint_id
    assert list(batch_res["tasks"]) == [noisy_fn_id]
    assert len(task_ids) == 7
    for val, tid in enumerate(task_ids):
        entry = batch_status[tid]
        assert entry["status"] == "success"
        noise, offset = val // 5, val + 1
        centre = (val + 3) * val + offset
        assert centre - noise <= entry["result"] <= centre + noise


def test_endpoint_operations(freight_home: Path, endpoint_id: str) -> None:
    # CLIENT_GUIDE, "Endpoint Operations".
    gcc = Client()
    ep_id = endpoint_id  # guide: '4b116d3c-1703-4f8f-9f6f-39921e5864df'
    status = gcc.get_endpoint_status(ep_id)
    assert status["status"] == "online"
    metadata = gcc.get_endpoint_metadata(ep_id)
    assert metadata["uuid"] == ep_id and metadata["name"]


def test_worker_hardware_details(
    freight_home: Path, endpoint_id: str, wait_for: Callable[..., None]
) -> None:
    # The reference's Client.get_worker_hardware_details docstring example, and
    # Executor.get_worker_hardware_details's.
    gcc = Client()
    ep_uuid = endpoint_id
    task_id = gcc.get_worker_hardware_details(ep_uuid)
    wait_for(_finished(gcc, task_id), "the report")  # guide: "wait some time..."
    report = gcc.get_result(task_id)
    assert "cpu_count:" in report and "python:" in report

    with Executor(ep_uuid) as gcx:
        report = gcx.get_worker_hardware_details()
    assert report.startswith("== Compute Endpoint worker ==")


# -- Specifying a serialization strategy -----------------------------------------------


def test_client_strategy_parameters(freight_home: Path, endpoint_id: str) -> None:
    # CLIENT_GUIDE, "Specifying a Serialization Strategy".
    from freight.client import Client, Executor
    from freight.serialize import CombinedCode, JSONData

    gcc = Client(
        code_serialization_strategy=CombinedCode(),
        data_serialization_strategy=JSONData(),
    )
    gcx = Executor(endpoint_id, client=gcc)  # guide: '4b116d3c-...'

    # do something with gcx
    def add(a, b):  # type: ignore[no-untyped-def]
        return a + b

    assert gcx.submit(add, [1], b=[2]).result() == [1, 2]
    assert gcc.fx_serializer.code_serializer.identifier == "10\n"
    assert gcc.fx_serializer.data_serializer.identifier == "11\n"
    gcx.shutdown()


@pytest.mark.parametrize(
    ("code", "data"),
    [
        pytest.param("CombinedCode()", "JSONData()", id="instance"),
        pytest.param("CombinedCode", "JSONData", id="class"),
        pytest.param("'10'", "'11'", id="identifier"),
        pytest.param("'combined-code'", "'json'", id="name"),
        pytest.param(
            "'freight.plugins.combo_strategies.CombinedCode'",
            "'freight.plugins.json_strategies.JSONData'",
            id="import-path",
        ),
    ],
)
def test_strategy_given_as_any_strategylike(
    freight_home: Path, endpoint_id: str, code: str, data: str
) -> None:
    from freight.serialize import CombinedCode, JSONData

    names = {"CombinedCode": CombinedCode, "JSONData": JSONData}
    gcc = Client(
        code_serialization_strategy=eval(code, names),
        data_serialization_strategy=eval(data, names),
    )
    assert type(gcc.fx_serializer.code_serializer).__name__ == "CombinedCode"
    assert type(gcc.fx_serializer.data_serializer).__name__ == "JSONData"
    with Executor(endpoint_id, client=gcc) as gcx:
        assert gcx.submit(sorted, {"b": 1, "a": 2}).result() == ["a", "b"]


def test_check_strategies(freight_home: Path, endpoint_id: str) -> None:
    # CLIENT_GUIDE (and EXECUTOR_GUIDE), check_strategies.
    from freight.serialize import ComputeSerializer, DillCodeSource, JSONData

    def greet(name, greeting="greetings"):  # type: ignore[no-untyped-def]
        """Greet someone."""

        return f"{greeting} {name}"

    serializer = ComputeSerializer(
        strategy_code=DillCodeSource(), strategy_data=JSONData()
    )

    serializer.check_strategies(greet, "world", greeting="hello")
    # serializes like the following:
    gcx = Executor(endpoint_id)  # guide: the Executor of the previous example
    gcx.serializer = serializer  # guide (EXECUTOR_GUIDE): gcx.serializer = ...
    fut = gcx.submit(greet, "world", greeting="hello")

    # use the return value of check_strategies:
    fn, args, kwargs = serializer.check_strategies(greet, "world", greeting="hello")
    assert fn(*args, **kwargs) == greet("world", greeting="hello")

    assert fut.result() == "hello world"
    gcx.shutdown()


def test_executor_serializer_and_result_serializers(freight_home: Path) -> None:
    # EXECUTOR_GUIDE, "Specifying a Submit-Side Serialization Strategy" and
    # "Specifying Result Serialization Strategies".
    from freight.client import Executor
    from freight.serialize import ComputeSerializer, JSONData, PureSourceTextInspect

    with Executor() as gcx:  # guide: Executor('<your-endpoint-id>')
        gcx.serializer = ComputeSerializer(
            strategy_code=PureSourceTextInspect(), strategy_data=JSONData()
        )
        assert gcx.submit(_source_function, 20).result() == 42

    with Executor(result_serializers=[JSONData()]) as gcx:  # guide: "your endpoint id"
        # or set it directly:
        gcx.result_serializers = [JSONData()]
        assert gcx.submit(dict, a=[1, 2]).result() == {"a": [1, 2]}
        # A result JSON cannot carry fails with the endpoint's reason.
        with pytest.raises(Exception, match=r"(?i)json|serializ"):
            gcx.submit(set, [1]).result()


def _source_function(x):  # type: ignore[no-untyped-def]
    return x * 2 + 2


def test_amqp_port_accepted(freight_home: Path) -> None:
    # EXECUTOR_GUIDE, "AMQP Port".
    gce = Executor(amqp_port=443)
    assert gce.amqp_port == 443
    gce.shutdown()


# -- Executor User Guide ---------------------------------------------------------------


def test_executor_basic_example(
    freight_home: Path, endpoint_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # EXECUTOR_GUIDE, globus_compute_executor_basic_example.py.
    def double(x):  # type: ignore[no-untyped-def]
        return x * 2

    tutorial_endpoint_id = endpoint_id  # guide: '4b116d3c-...'
    with Executor(endpoint_id=tutorial_endpoint_id) as gce:
        fut = gce.submit(double, 7)

        print(fut.result())

    assert capsys.readouterr().out == "14\n"


def test_executor_is_the_whole_program(freight_home: Path) -> None:
    # Issue 11: on the embedded default, this is the whole program.
    def f(x):  # type: ignore[no-untyped-def]
        return x + 1

    with Executor() as ex:
        assert ex.submit(f, 1).result() == 2


def test_executor_collatz(freight_home: Path, endpoint_id: str) -> None:
    # EXECUTOR_GUIDE, globus_compute_executor_collatz.py.
    def generate_collatz_sequence(N: int, sequence_limit=10_000):  # type: ignore[no-untyped-def]
        seq = [N]
        while N != 1 and len(seq) < sequence_limit:
            if N % 2:
                N = 3 * N + 1
            else:
                N //= 2  # okay because guaranteed integer result
            seq.append(N)
        return seq

    ep_id = endpoint_id  # guide: "<your_endpoint_id>"

    generate_from = 1
    generate_through = 100
    futs, results, disproof_candidates = [], [], []
    with Executor(endpoint_id=ep_id) as gce:
        for n in range(generate_from, generate_through + 1):
            futs.append(gce.submit(generate_collatz_sequence, n))
        print("Tasks all submitted; waiting for results")

    for f in futs:
        r = f.result()
        results.append(r)
        if r[-1] != 1:
            disproof_candidates.append(r[0])

    assert [r[0] for r in results] == list(range(1, 101))
    assert not disproof_candidates
    assert results[26] == generate_collatz_sequence(27)

    # "Checking the Status of a Result": .done() does not block.
    with Executor(endpoint_id=ep_id) as gce:
        future = gce.submit(generate_collatz_sequence, 1234567890)
        assert future.done() in (True, False)
    assert future.done()


def test_executor_handles_exceptions(
    freight_home: Path, endpoint_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # EXECUTOR_GUIDE, globus_compute_executor_handle_result_exceptions.py.
    def generate_collatz_sequence(N: int, sequence_limit=100):  # type: ignore[no-untyped-def]
        seq = [N]
        while N != 1 and len(seq) < sequence_limit:
            if N % 2:
                N = 3 * N + 1
            else:
                N //= 2  # okay because guaranteed integer result
            seq.append(N)
        if N != 1:
            raise ValueError(f"Sequence not terminated in {sequence_limit} steps")
        return seq

    ep_id = endpoint_id
    with Executor(endpoint_id=ep_id) as gce:
        future = gce.submit(generate_collatz_sequence, 1234567890)

    try:
        print(future.result())
    except Exception as exc:
        print(f"Oh no!  The task raised an exception: {exc}")  # guide: missing "

    assert capsys.readouterr().out == (
        "Oh no!  The task raised an exception: Sequence not terminated in 100 steps\n"
    )
    assert isinstance(future.exception(), ValueError)


def test_executor_results_as_they_arrive(
    freight_home: Path, endpoint_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # EXECUTOR_GUIDE, globus_compute_executor_results_as_arrived.py.
    def double(x):  # type: ignore[no-untyped-def]
        return f"{x} -> {x * 2}"

    def slow_double(x):  # type: ignore[no-untyped-def]
        import random
        import time

        time.sleep(x * random.random() / 1000)  # guide: up to x seconds
        return f"{x} -> {x * 2}"

    with Executor(endpoint_id=endpoint_id) as gce:
        futs = [gce.submit(double, i) for i in range(10)]

        print("Results:", [f.result() for f in futs])

        futs = [gce.submit(slow_double, i) for i in range(10, 20)]
        for f in concurrent.futures.as_completed(futs):
            print("Received:", f.result())

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Results: " + str([f"{i} -> {i * 2}" for i in range(10)])
    assert sorted(lines[1:]) == sorted(
        f"Received: {i} -> {i * 2}" for i in range(10, 20)
    )


RELOAD_SCRIPT = """
# EXECUTOR_GUIDE, globus_compute_executor_reload_tasks.py, as written apart from
# the import lines and the endpoint id.
import os, signal, sys, time, typing as t
from freight.client import Executor  # guide: from globus_compute_sdk import ...
from freight.client import ComputeFuture  # guide: ...sdk.executor import ...

task_group_id = sys.argv[1] if len(sys.argv) > 1 else None

def task_kernel(num):
    return f"your Globus Compute logic result, from task: {num}"

ep_id = "{EP_ID}"  # guide: "<YOUR_ENDPOINT_UUID>"
with Executor(endpoint_id=ep_id) as gce:
    futures: t.Iterable[ComputeFuture]
    if task_group_id:
        print(f"Reloading tasks from Task Group ID: {task_group_id}")
        gce.task_group_id = task_group_id
        futures = gce.reload_tasks()

    else:
        # Save the task_group_id somewhere.  Perhaps in a file, or less
        # robustly "as mere text" on your console:
        print(
            "New session; creating Globus Compute tasks; if this script dies, rehydrate"
            f" futures with this Task Group ID: {gce.task_group_id}"
        )
        num_tasks = 5
        futures = [gce.submit(task_kernel, i + 1) for i in range(num_tasks)]

        # Ensure all tasks have been sent upstream ...
        while gce.task_count_submitted < num_tasks:
            time.sleep(1)
            print(f"Tasks submitted upstream: {gce.task_count_submitted}")

        # ... before script death for [silly reason; did you lose power!?]
        bname = sys.argv[0]
        if sys.argv[0] != sys.orig_argv[0]:
            bname = f"{sys.orig_argv[0]} {bname}"

        print("Simulating unexpected process death!  Now reload the session")
        print("by rerunning this script with the task_group_id:\\n")
        print(f"  {bname} {gce.task_group_id}\\n")
        sys.stdout.flush()  # guide: not needed on a terminal
        os.kill(os.getpid(), signal.SIGKILL)
        exit(1)  # In case KILL takes split-second to process

# Get results:
results, exceptions = [], []
for f in futures:
    try:
        results.append(f.result(timeout=10))
    except Exception as exc:
        exceptions.append(exc)
print("Results:\\n ", "\\n  ".join(results))
print("EXCEPTIONS", [type(e).__name__ for e in exceptions])  # not in the guide
"""


def test_reload_tasks_after_process_death(freight_home: Path, endpoint_id: str) -> None:
    # EXECUTOR_GUIDE, "Reloading Tasks": the script dies by SIGKILL after
    # submitting, and a new process reloads its task group.  Tasks that finished
    # before the death give their results (never fetched by anyone); any that
    # had not are failed with ServiceStopped by the next start, never lost.
    script = freight_home / "reload_tasks.py"
    script.write_text(RELOAD_SCRIPT.replace("{EP_ID}", endpoint_id))
    first = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert first.returncode == -9, first.stderr
    tg = first.stdout.split("Task Group ID: ")[1].split()[0]
    second = subprocess.run(
        [sys.executable, str(script), tg], capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert f"Reloading tasks from Task Group ID: {tg}" in out
    results = [
        line.strip()
        for line in out.split("Results:\n", 1)[1].splitlines()
        if line.strip().startswith("your Globus")
    ]
    names = ast.literal_eval(out.split("EXCEPTIONS ", 1)[1].strip())
    assert len(results) + len(names) == 5
    assert set(names) <= {ServiceStopped.__name__}, out
    assert set(results) <= {
        f"your Globus Compute logic result, from task: {n}" for n in range(1, 6)
    }
