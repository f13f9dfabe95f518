"""A stand-in for the ``docker`` CLI, to test the process engine's container
plumbing where no container runtime works (the real runtimes are tested by
``test_a_container_environment_runs_workers_in_the_container`` where they do).

``run [--rm] [-i] --name N [-v HOST:INSIDE:ro]... [-e K=V]... [OPTS] IMAGE CMD...``
runs CMD as a plain process in a fake container filesystem: a directory
(``$FAKE_RUNTIME_STATE/root``) where each ``INSIDE`` is a symlink to its
``HOST``, and ``PYTHONPATH`` entries are rewritten into it.  ``kill N`` SIGKILLs
the process of container N.  Each ``run`` appends its arguments to
``$FAKE_RUNTIME_STATE/runs``, each ``kill`` its name to ``.../kills``.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main(args: list[str]) -> int:
    state = os.environ["FAKE_RUNTIME_STATE"]
    if args[0] == "kill":
        with open(os.path.join(state, "kills"), "a") as f:
            f.write(args[1] + "\n")
        try:
            with open(os.path.join(state, args[1])) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            return 1
        return 0
    if args[0] != "run":
        return 2
    with open(os.path.join(state, "runs"), "a") as f:
        f.write(json.dumps(args) + "\n")
    root = os.path.join(state, "root")
    env = dict(os.environ)
    name = None
    i = 1
    while args[i].startswith("-"):
        opt = args[i]
        if opt in ("--rm", "-i"):
            i += 1
        elif opt == "--name":
            name = args[i + 1]
            i += 2
        elif opt == "-v":
            host, inside, _ = args[i + 1].split(":")
            link = root + inside
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.lexists(link):
                os.symlink(host, link)
            i += 2
        elif opt == "-e":
            key, _, value = args[i + 1].partition("=")
            env[key] = value
            i += 2
        else:
            i += 1
    command = args[i + 1 :]
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] = ":".join(root + p for p in env["PYTHONPATH"].split(":"))
    assert name is not None
    with open(os.path.join(state, name), "w") as f:
        f.write(str(os.getpid()))
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
