"""What the service tests run in a separate process: ``python service_child.py
COMMAND HOME [ARGS]``.  Each command prints one JSON line when it reaches the
point the test waits for."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from service_helpers import ECHO_SRC, WAIT_SRC, register_source, text_payload

from freight.service.embedded import embedded_service
from freight.service.store import FINAL


def say(value: Any) -> None:
    print(json.dumps(value), flush=True)


def wait_final(core: Any, ids: list[str]) -> None:
    while True:
        rows = core.store.get_tasks(ids)
        if all(rows[t].status in FINAL for t in ids):
            return
        time.sleep(0.02)


def main() -> None:
    command, home = sys.argv[1], sys.argv[2]
    if command == "endpoint":
        say(embedded_service(home).endpoint_ids[0])
    elif command == "client-run":
        from freight.client import Client

        client = Client(home=home)
        fid = client.register_source_code(ECHO_SRC, "echo")
        ep = client.get_endpoints()[0]["uuid"]
        tid = client.run({"answer": 41}, endpoint_id=ep, function_id=fid)
        wait_final(embedded_service(home), [tid])  # finished, not retrieved
        say(tid)
    elif command == "client-get":
        from freight.client import Client

        say(Client(home=home).get_result(sys.argv[3]))
    elif command == "batch":
        markers, mode = sys.argv[3], sys.argv[4]
        core = embedded_service(home, workers=2)
        ep = core.endpoint_ids[0]
        echo = register_source(core, "echo", ECHO_SRC)
        wait = register_source(core, "wait_for", WAIT_SRC)
        group = "0c0c0c0c-5555-4e5e-9e9e-4e4e4e4e4e4e"
        quick = core.submit(
            ep,
            {
                "task_group_id": group,
                "tasks": {echo: [text_payload(i) for i in range(3)]},
            },
        )["tasks"][echo]
        wait_final(core, quick)
        blocked = core.submit(
            ep,
            {
                "task_group_id": group,
                "tasks": {wait: [text_payload(markers, str(i), i) for i in range(5)]},
            },
        )["tasks"][wait]
        while len([n for n in os.listdir(markers) if n.startswith("started-")]) < 2:
            time.sleep(0.02)
        say({"quick": quick, "blocked": blocked, "group": group, "pid": os.getpid()})
        if mode == "crash":
            sys.stdin.read()  # until killed
        else:
            wait_final(core, blocked)
            rows = core.store.get_tasks(blocked)
            say({t: rows[t].status for t in blocked})
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
