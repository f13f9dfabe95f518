"""freight's endpoint: takes tasks from a service and runs them through an engine.

Engines are plugins (``freight.endpoint.engine``); the built-ins are ``thread`` and
``process``.
"""
