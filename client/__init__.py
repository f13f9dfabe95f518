"""freight's client: ``Client``, ``Batch`` and ``Executor`` with the reference's API.

``Client()`` with nothing configured runs on the embedded local service
(``freight.service.embedded``); see ``freight.client.client``.
"""

from freight.client.batch import Batch
from freight.client.client import Client
from freight.client.errors import TaskExecutionFailed, TaskPending
from freight.client.executor import ComputeFuture, Executor

__all__ = [
    "Batch",
    "Client",
    "ComputeFuture",
    "Executor",
    "TaskExecutionFailed",
    "TaskPending",
]
