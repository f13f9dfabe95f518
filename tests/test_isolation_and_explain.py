"""``freight.serialize.isolation`` and ``freight.serialize.explain``: isolated round
trips and explained verdicts.

Every isolated check starts a ``python -I`` child (a few tenths of a second), so the
tests that need one each pin down a distinct behaviour and the rest run in process.
"""

from __future__ import annotations

import colorsys
import importlib
import json
import subprocess
import sys
import textwrap
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import samples

from freight.serialize import ComputeSerializer, SerdeError, SerializationError
from freight.serialize.explain import ExplainReport, explain
from freight.serialize.isolation import (
    CheckError,
    ErrorInfo,
    Stage,
    check_isolated,
    check_isolated_call,
)

LOCAL_SOURCE = """\
import math


def triple(x):
    return 3 * x


def root(x):
    return math.sqrt(x)


def scale(x, *, timeout):
    return x * timeout


def boom(x):
    print("about to fail")
    raise ValueError(f"bad {x}")


def hang():
    import time

    time.sleep(60)
"""


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A module importable in this process only: its directory is on this
    process's ``sys.path``, which a ``python -I`` child does not inherit."""
    name = f"freight_local_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(LOCAL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def serializer(
    code: str = "dill-code", allowed: list[str] | None = None
) -> ComputeSerializer:
    return ComputeSerializer(
        strategy_code=code, allowed_deserializer_types=allowed, cache_code=False
    )


# -- check_isolated -------------------------------------------------------------------


def test_isolated_check_passes_for_a_function_from_an_installed_module() -> None:
    check = check_isolated(serializer(), colorsys.rgb_to_hsv, 0.2, 0.4, 0.4)

    assert check.ok, check.reason
    assert check.stage is Stage.DONE
    assert check.result == colorsys.rgb_to_hsv(0.2, 0.4, 0.4)
    assert check.reason is None and check.error is None
    assert check.raise_for_error() == check.result
    assert check.decode_seconds is not None and check.call_seconds is not None


def test_by_reference_strategy_fails_for_a_module_only_the_caller_can_import(
    local: ModuleType,
) -> None:
    serde = serializer("dill-code")
    assert serde.check_strategies(local.triple, 2)[0](2) == 6  # fine in process

    check = check_isolated(serde, local.triple, 2)

    assert not check.ok
    assert check.stage is Stage.DESERIALIZE
    assert check.error is not None
    assert check.error.root.type_name == "ModuleNotFoundError"
    assert check.reason is not None
    assert f"module {local.__name__!r} is not importable" in check.reason
    assert "by reference" in check.reason or "reference into it" in check.reason


def test_pythonpath_lets_the_child_import_that_module(
    local: ModuleType, tmp_path: Path
) -> None:
    # The call form also passes a keyword that shares an option's name.
    check = check_isolated_call(
        serializer("dill-code"),
        local.scale,
        (2,),
        {"timeout": 5},
        pythonpath=[tmp_path],
    )

    assert check.ok, check.reason
    assert check.result == 10


def test_source_strategy_carries_the_function_without_its_module(
    local: ModuleType,
) -> None:
    check = check_isolated(serializer("source-text-inspect"), local.triple, 2)

    assert check.ok, check.reason
    assert check.result == 6


def test_exception_in_the_child_comes_back_with_type_message_and_traceback(
    local: ModuleType, tmp_path: Path
) -> None:
    check = check_isolated(serializer(), local.boom, 3, pythonpath=[tmp_path])

    assert check.stage is Stage.CALL
    assert check.error is not None
    assert (check.error.type_name, check.error.message) == ("ValueError", "bad 3")
    assert "in boom" in check.error.traceback
    assert 'raise ValueError(f"bad {x}")' in check.error.traceback
    assert "_child_run" not in check.error.traceback  # the harness frame is cut
    assert (
        check.reason == "the function raised ValueError: bad 3 in the receiving process"
    )
    assert "about to fail" in check.output  # prints are captured, reply intact
    with pytest.raises(CheckError, match="bad 3") as raised:
        check.raise_for_error()
    assert raised.value.check is check
    assert isinstance(raised.value.__cause__, ValueError)  # rebuilt remote error
    # The remote traceback shows once: in the cause's notes.
    shown = "".join(traceback.format_exception(raised.value))
    assert shown.count("Remote traceback") == 1
    assert any("Remote traceback" in n for n in raised.value.__cause__.__notes__)


def test_hung_function_is_killed_at_the_timeout(local: ModuleType) -> None:
    check = check_isolated(serializer("source-text-inspect"), local.hang, timeout=1)

    assert check.stage is Stage.TIMEOUT
    assert check.elapsed_seconds < 30
    assert check.reason is not None and "1 s" in check.reason
    assert "killed" in check.reason


def test_child_decodes_under_the_callers_allowlist(local: ModuleType) -> None:
    serde = serializer("source-text-inspect", allowed=["dill-code", "dill-data"])

    check = check_isolated(serde, local.triple, 2)

    assert check.stage is Stage.DESERIALIZE
    assert check.reason is not None and "allowlist" in check.reason


def test_function_defined_in_main_passes_in_process_but_not_isolated(
    tmp_path: Path,
) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """\
            import json
            from freight.serialize import ComputeSerializer
            from freight.serialize.isolation import check_isolated

            def helper(x):
                return x + 1

            def f(x):
                return helper(x) * 2

            serde = ComputeSerializer("dill-code")
            fn, args, kwargs = serde.check_strategies(f, 3)
            check = check_isolated(serde, f, 3)
            print(json.dumps({
                "in_process": fn(*args, **kwargs),
                "stage": check.stage,
                "type": check.error and check.error.type_name,
                "reason": check.reason,
            }))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)

    assert outcome["in_process"] == 8
    assert outcome["stage"] == "call"
    assert outcome["type"] == "NameError"
    assert "'helper'" in outcome["reason"]
    assert "module globals" in outcome["reason"]


def test_an_interpreter_that_cannot_start_is_reported() -> None:
    check = check_isolated(
        serializer(), colorsys.rgb_to_hsv, 0, 0, 0, python="/no/python"
    )

    assert check.stage is Stage.START
    assert check.reason is not None and "before reporting" in check.reason


def test_a_function_that_cannot_be_serialized_raises_before_anything_is_sent() -> None:
    with pytest.raises(SerializationError, match="closure"):
        check_isolated(serializer("source-text-inspect"), samples.make_closure(2), 1)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        check_isolated(serializer(), samples.add, 1, 2, timeout=0)


# -- explain --------------------------------------------------------------------------

PLAIN = samples.add
CLOSURE = samples.make_closure(2)
DECORATED = samples.greet
BY_VALUE = samples.by_value("def bump(x):\n    return x + 1\n", "bump")
USES_GLOBAL = samples.by_value(
    "import math\n\ndef sqrt(x):\n    return math.sqrt(x)\n", "sqrt"
)
LAMBDA = samples.by_value("inc = lambda x: x + 1\n", "inc")
SOURCE = ("source-text-inspect", "source-dill")


@pytest.mark.parametrize(
    ("function", "args", "working", "failing", "why"),
    [
        (PLAIN, (1, 2), ("dill-code", "all-code", *SOURCE), (), ""),
        (CLOSURE, (5,), ("dill-code", "all-code"), SOURCE, "cannot carry closures"),
        (DECORATED, ("bob",), ("dill-code", "all-code"), SOURCE, "it is decorated"),
        (BY_VALUE, (1,), ("dill-code", "all-code", *SOURCE), (), ""),
        (USES_GLOBAL, (4,), ("dill-code",), SOURCE, "name 'math' is not defined"),
        (LAMBDA, (1,), ("dill-code", "all-code"), SOURCE, "lambda"),
    ],
    ids=["plain", "closure", "decorated", "by_value", "uses_global", "lambda"],
)
def test_explain_says_which_strategies_work_and_why_the_others_do_not(
    function: object,
    args: tuple[object, ...],
    working: tuple[str, ...],
    failing: tuple[str, ...],
    why: str,
) -> None:
    report = explain(None, function, *args)  # type: ignore[arg-type]

    for name in working:
        assert report[name].ok, (name, report[name].reason)
        assert report[name].matched is True
    for name in failing:
        assert not report[name].ok
        assert why in (report[name].reason or ""), report[name].reason
    for row in report.strategies:  # every registered code strategy, judged
        assert (row.reason is None) == row.ok, row
        if row.ok:
            assert row.payload_chars and row.encode_seconds is not None
            assert row.decode_seconds is not None


def test_explain_reports_a_copy_whose_outcome_differs() -> None:
    counter = samples.by_value(
        "calls = []\n\ndef count():\n    calls.append(1)\n    return len(calls)\n",
        "count",
    )

    row = explain(["dill-code"], counter)["dill-code"]

    # The copy carries the list as it was after the original's call.
    assert not row.ok and row.stage is Stage.CALL and row.matched is False
    assert row.reason == (
        "the round-tripped function returned 2, the original returned 1"
    )


def test_explain_judges_array_results_by_value() -> None:
    # An array's == has no plain truth value, alone or inside a container.
    import numpy as np

    for result in (lambda: np.arange(3), lambda: {"a": np.arange(3)}):
        assert explain(["cloudpickle"], result)["cloudpickle"].ok
    counter = samples.by_value(
        "import numpy as np\ncalls = []\n\ndef count():\n"
        "    calls.append(1)\n    return {'a': np.arange(len(calls))}\n",
        "count",
    )
    row = explain(["dill-code"], counter)["dill-code"]
    assert not row.ok and row.stage is Stage.CALL and row.matched is False


def test_explain_with_a_serializer_uses_it_as_configured() -> None:
    serde = ComputeSerializer(
        strategy_code="source-dill",
        allowed_deserializer_types=["dill-code", "dill-data"],
    )

    report = explain(serde, samples.add, 1, 2)

    assert [row.strategy for row in report.strategies] == ["source-dill"]
    assert report.strategies[0].stage is Stage.DESERIALIZE
    assert "allowlist" in (report.strategies[0].reason or "")
    assert not report.ok


def test_explain_refuses_strategies_it_cannot_select() -> None:
    with pytest.raises(SerdeError, match="no registered strategy"):
        explain(["no-such-strategy"], samples.add, 1, 2)
    with pytest.raises(SerdeError, match="data serialization strategy"):
        explain("dill-data", samples.add, 1, 2)


def test_explain_isolated_judges_each_strategy_in_its_own_child(
    local: ModuleType,
) -> None:
    report = explain(
        ["dill-code", "source-text-inspect"], local.triple, 2, isolated=True
    )

    assert report.isolated and report.working == ["source-text-inspect"]
    dill = report["dill-code"]
    assert dill.isolated and dill.stage is Stage.DESERIALIZE
    assert local.__name__ in (dill.reason or "")
    assert report["st"].outcome == "returned 6"


def test_explain_isolated_counts_the_same_exception_as_a_match(
    local: ModuleType,
) -> None:
    row = explain(["source-text-inspect"], local.boom, 3, isolated=True)[
        "PureSourceTextInspect"
    ]

    assert row.ok and row.matched
    assert row.outcome == "raised ValueError: bad 3"


def test_report_renders_as_a_table_and_as_json() -> None:
    report = explain(["dill-code", "source-dill"], CLOSURE, 5)
    text = str(report)

    assert isinstance(report, ExplainReport)
    assert text.splitlines()[0] == (
        "samples.make_closure.<locals>.scaled(5) returned 10"
    )
    assert "strategy" in text and "why" in text
    assert "FAILED" in text and "cannot carry closures" in text
    whole = json.loads(json.dumps(report.to_dict()))
    assert whole["ok"] is True
    assert [row["strategy"] for row in whole["strategies"]] == [
        "dill-code",
        "source-dill",
    ]
    failed = whole["strategies"][1]
    assert failed["ok"] is False and failed["stage"] == "serialize"
    assert failed["error"].startswith("SerializationError")
    assert failed["reason"] and failed["traceback"]


# -- errors as data -------------------------------------------------------------------


def test_error_info_keeps_the_chain_and_its_root() -> None:
    try:
        try:
            {}["k"]
        except KeyError as e:
            raise ValueError("bad") from e
    except ValueError as e:
        info = ErrorInfo.from_exception(e)

    assert str(info) == "ValueError: bad"
    assert str(info.root) == "KeyError: 'k'"
    assert "direct cause" in info.format()
    assert ErrorInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert isinstance(info.rebuild(), ValueError)
