"""The hardware report ``get_worker_hardware_details`` runs on an endpoint."""

from __future__ import annotations


def run_hardware_report(env: str | None = None) -> str:
    """A text report of the worker's machine: CPU, memory, OS and Python;
    ``env`` (e.g. ``"Compute Endpoint worker"``) titles it, as the reference's."""
    import os
    import platform
    import socket
    import sys

    lines = [
        f"== {env} ==" if env else "== hardware report ==",
        f"hostname: {socket.gethostname()}",
        f"os: {platform.platform()}",
        f"machine: {platform.machine()}",
        f"processor: {platform.processor() or 'unknown'}",
        f"cpu_count: {os.cpu_count()}",
        f"python: {sys.version.split()[0]} ({sys.executable})",
    ]
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        lines.append(f"memory: {pages / 2**30:.1f} GiB")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        lines.append(f"load_average: {os.getloadavg()}")
    except OSError:
        pass
    return "\n".join(lines)
