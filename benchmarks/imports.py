"""Import cost of a serializer module, measured in fresh interpreters.

Like with like: ``import globus_compute_sdk.serialize`` first runs the SDK
package's ``__init__``, which imports its client, executor and their
dependencies.  So the reference is measured twice: as users import it
(``globus_compute_sdk.serialize``), and its serialization modules alone
(``ALONE``: the package ``__init__`` replaced by an empty package object with
the same search path, so only ``serialize`` and what it imports load).
``freight.serialize`` is the framework alone (plugins, cloudpickle, msgpack and
numpy load on first use); the package ``freight/__init__`` is small.

Each run starts a new ``python`` (this interpreter, from a neutral directory) that
times ``import MODULE`` with ``time.perf_counter_ns`` and then, in the same process,
the first use: constructing the default ``ComputeSerializer`` and one round trip of a
small dict (for freight that is when plugins load).  Interpreter start-up is not
included.  Both modules are measured with warm bytecode caches, as a user would see
them: the children write their ``.pyc`` files under a private ``PYTHONPYCACHEPREFIX``
(so nothing is written into the repository or site-packages, whatever
``PYTHONDONTWRITEBYTECODE`` says), and one untimed run fills it first.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

from model import ImportTiming

#: The suffix that asks for a module's parent package without its ``__init__``.
ALONE = " (alone)"

_SKIP_PARENT = """\
import importlib.util, sys, types
_spec = importlib.util.find_spec({parent!r})
_pkg = types.ModuleType({parent!r})
_pkg.__path__ = list(_spec.submodule_search_locations)
sys.modules[{parent!r}] = _pkg
"""

_PROGRAM = """\
import time
{setup}start = time.perf_counter_ns()
import {module} as m
imported = time.perf_counter_ns()
serde = m.ComputeSerializer()
serde.deserialize(serde.serialize({{"x": [1, 2, 3]}}))
used = time.perf_counter_ns()
print(imported - start, used - start)
"""


def _once(module: str, pycache: str) -> tuple[float, float]:
    setup = ""
    if module.endswith(ALONE):
        module = module.removesuffix(ALONE)
        setup = _SKIP_PARENT.format(parent=module.split(".")[0])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(module=module, setup=setup)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
        env=env,
    ).stdout.split()
    return int(out[0]) / 1e6, int(out[1]) / 1e6


def import_time(module: str, runs: int) -> ImportTiming:
    """Median import and first-use time of ``module`` over ``runs`` fresh processes."""
    with tempfile.TemporaryDirectory(prefix="freight-bench-pycache-") as pycache:
        _once(module, pycache)
        samples = [_once(module, pycache) for _ in range(runs)]
    return ImportTiming(
        module=module,
        import_ms=statistics.median(s[0] for s in samples),
        first_use_ms=statistics.median(s[1] for s in samples),
        runs=runs,
    )
