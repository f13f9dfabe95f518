"""freight inside other systems' serialization registries.

Each module adapts freight to one library and imports that library only when
used: ``freight.integrations.kombu`` (kombu's codec registry: Celery, RabbitMQ
through kombu) and ``freight.integrations.dask`` (a ``distributed.protocol``
serialization family).  Install their extras: ``pip install 'freight[kombu]'``,
``'freight[dask]'`` or ``'freight[integrations]'``.
"""
