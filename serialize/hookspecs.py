"""The hooks a freight plugin implements: the plugin author's manual.

A plugin is a module (or any object) with functions marked ``@hookimpl``, made known
to freight by an entry point in the ``freight.strategies`` group of its
distribution's metadata::

    # pyproject.toml of your package
    [project.entry-points."freight.strategies"]
    zstd = "freight_zstd.plugin"

    # freight_zstd/plugin.py
    from freight.serialize import hookimpl

    @hookimpl
    def freight_strategies():
        return [ZstdDill]

freight reads the group once, lazily, the first time a strategy is looked up, and
imports each entry point's object.  freight's own strategies register exactly this
way (see the ``[project.entry-points."freight.strategies"]`` table in freight's
``pyproject.toml``).  A plugin object can also be registered at run time with
``freight.serialize.default_registry().register_plugin(obj, name)``.

Which entry points load (``FREIGHT_PLUGINS``, ``FREIGHT_BLOCK_PLUGINS``,
``FREIGHT_DISABLE_PLUGIN_AUTOLOAD``, ``FREIGHT_STRICT_PLUGINS``, and which wins) and
how a broken plugin is reported are described in ``freight.serialize.registry``;
PLUGINS.md at the repository root is the author's guide.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from freight.serialize.strategy import SerializationStrategy

#: The pluggy project name that ties hook specifications to implementations.
PROJECT_NAME = "freight"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a plugin's function as an implementation of one of the hooks below.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def freight_strategies() -> Iterable[type[SerializationStrategy]]:  # type: ignore[empty-body]
    """Return the ``SerializationStrategy`` subclasses this plugin provides.

    Each class must define ``identifier`` (two characters and ``"\\n"``, the
    newline included: ``"Z1\\n"``) and
    ``for_code``, may define a short ``name`` (default: the class name), and must be
    instantiable with no arguments; freight makes one instance per registry.

    Identifiers are the wire format's only dispatch key, so they must be unique
    across every installed plugin: a second strategy claiming a registered
    identifier (or short name) is refused with an error naming both and the plugin
    and distribution each came from.
    """
