"""Results for the reference's ``Executor`` over AMQP (RabbitMQ): the queues and
the publisher behind ``GET /v2/get_amqp_result_connection_url``.

``AmqpResults(core, broker_url, queue_prefix)`` owns one pika connection, used
only by its own thread (pika connections are not thread-safe).  Everything else
hands it work through a queue:

* ``declare(task_group_id)`` declares the durable queue
  ``{queue_prefix}{task_group_id}`` and waits until the broker confirmed it (the
  HTTP face calls it for a submit with ``create_queue`` *before* answering, since
  the reference's ``Executor`` never declares the queue itself); the group is
  remembered as one that has a queue.  A broker that cannot be reached raises
  ``ServiceUnavailable``.
* a ``ServiceCore.subscribe(None, ...)`` subscription hands every finished task
  of such a group to the thread, which publishes
  ``reference_dialect.encode_amqp_result(status)`` on the default exchange with
  ``result_message_properties(status)``.  The callback never blocks.  A status
  whose result is bytes (freight's binary envelope, which the reference never
  sends) is skipped and logged.  A publish that fails is logged and dropped: the
  result stays retrievable by ``GET /v2/tasks``, ``batch_status`` and
  ``reload_tasks``; the connection is reopened for the next message.

The groups that have a queue are held in memory: after a restart of the service,
results of older groups are not published (a ``reload_tasks`` still reads them
by ``batch_status``).  Queues are not deleted by the service (retention of
queues is left for later).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from concurrent.futures import Future
from typing import Any

from freight.service.core import ServiceCore
from freight.service.errors import ServiceError, ServiceUnavailable
from freight.service.reference_dialect import (
    DEFAULT_QUEUE_PREFIX,
    amqp_connection_response,
    encode_amqp_result,
    result_message_properties,
    result_queue_name,
)

__all__ = ["DEFAULT_QUEUE_PREFIX", "AmqpNotConfigured", "AmqpResults"]

log = logging.getLogger(__name__)

#: Seconds a submit waits for the broker to confirm its queue.
DECLARE_TIMEOUT_S = 30.0


class AmqpNotConfigured(ServiceError):
    """``GET /v2/get_amqp_result_connection_url`` on a service started without a
    broker (501: globus-sdk does not retry it)."""

    code = "AMQP_NOT_CONFIGURED"
    http_status = 501


_STOP = object()


class AmqpResults:
    """The result queues and publisher of one service; see the module docstring.
    ``close()`` stops the thread and closes the connection (the core is not
    owned)."""

    def __init__(
        self,
        core: ServiceCore,
        broker_url: str,
        queue_prefix: str = DEFAULT_QUEUE_PREFIX,
    ) -> None:
        self.connection = amqp_connection_response(broker_url, queue_prefix)
        self.broker_url = broker_url
        self.queue_prefix = queue_prefix
        self._groups: set[str] = set()
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="freight-amqp-results", daemon=True
        )
        self._thread.start()
        self._sub = core.subscribe(None, self._on_result)

    # -- called from other threads ------------------------------------------------
    def has_queue(self, task_group_id: str) -> bool:
        """True once ``declare(task_group_id)`` succeeded in this process."""
        with self._lock:
            return task_group_id in self._groups

    def declared_queues(self) -> list[str]:
        """The names of the queues ``declare`` made in this process."""
        with self._lock:
            return [result_queue_name(self.queue_prefix, g) for g in self._groups]

    def declare(self, task_group_id: str) -> bool:
        """Declare the group's queue (idempotent) and return True if this call
        added the group (False if it already had a queue).  Raises
        ``ServiceUnavailable`` if the broker does not confirm it."""
        name = result_queue_name(self.queue_prefix, str(uuid.UUID(task_group_id)))
        done: Future[None] = Future()
        self._work.put(("declare", name, done))
        try:
            done.result(DECLARE_TIMEOUT_S)
        except Exception as e:
            raise ServiceUnavailable(
                f"the result queue {name!r} could not be declared on the broker: {e}"
            ) from None
        with self._lock:
            added = task_group_id not in self._groups
            self._groups.add(task_group_id)
        return added

    def forget(self, task_group_id: str) -> None:
        """Undo a ``declare`` whose submit failed: delete the (empty) queue."""
        with self._lock:
            self._groups.discard(task_group_id)
        name = result_queue_name(self.queue_prefix, task_group_id)
        self._work.put(("delete", name, Future()))

    def _on_result(self, status: dict[str, Any]) -> None:
        tg = status.get("task_group_id")
        if not isinstance(tg, str) or not self.has_queue(tg):
            return
        if isinstance(status.get("result"), bytes | bytearray | memoryview):
            log.warning(
                "task %s: a binary-envelope result is not published to the"
                " reference's result queue",
                status.get("task_id"),
            )
            return
        self._work.put(("publish", status, None))

    def close(self) -> None:
        """Stop publishing; idempotent.  Queued messages not yet sent are dropped
        (their results stay retrievable)."""
        self._sub.close()
        self._work.put(_STOP)
        if self._thread is not threading.current_thread():
            self._thread.join(10.0)

    # -- the publisher thread -------------------------------------------------------
    def _run(self) -> None:
        import pika  # type: ignore[import-untyped]

        conn: Any = None
        channel: Any = None

        def connect() -> Any:
            nonlocal conn, channel
            if channel is None or not channel.is_open:
                if conn is not None and conn.is_open:
                    try:
                        conn.close()
                    except Exception:
                        pass
                params = pika.URLParameters(self.broker_url)
                params.connection_attempts = 1
                params.socket_timeout = 10
                conn = pika.BlockingConnection(params)
                channel = conn.channel()
            return channel

        try:
            while True:
                try:
                    item = self._work.get(timeout=1.0)
                except queue.Empty:
                    if conn is not None and conn.is_open:
                        try:
                            conn.process_data_events(0)  # heartbeats
                        except Exception:
                            channel = None
                    continue
                if item is _STOP:
                    return
                kind, arg, done = item
                try:
                    for attempt in (1, 2):  # once more on a fresh connection
                        try:
                            ch = connect()
                            if kind == "declare":
                                ch.queue_declare(queue=arg, durable=True)
                            elif kind == "delete":
                                ch.queue_delete(queue=arg, if_empty=True)
                            else:
                                ch.basic_publish(
                                    exchange="",
                                    routing_key=result_queue_name(
                                        self.queue_prefix, arg["task_group_id"]
                                    ),
                                    body=encode_amqp_result(arg),
                                    properties=pika.BasicProperties(
                                        **result_message_properties(arg)
                                    ),
                                )
                            break
                        except pika.exceptions.AMQPError:
                            channel = None
                            if attempt == 2:
                                raise
                except Exception as e:
                    channel = None
                    if done is not None:
                        done.set_exception(e)
                    else:
                        log.warning(
                            "task %s: its result was not published: %r",
                            arg.get("task_id"),
                            e,
                        )
                    continue
                if done is not None:
                    done.set_result(None)
        finally:
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception:
                    pass
