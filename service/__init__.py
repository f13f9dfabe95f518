"""freight's service core: functions, endpoints, task groups, tasks and results.

See ``freight.service.core`` for the core, ``freight.service.protocol`` for the seam
to endpoints and ``freight.service.errors`` for the errors every transport raises.
"""
