"""Source of a small installable strategy plugin, for tests that fake distributions."""

PLUGIN_MODULE_TEMPLATE = """
from freight.serialize import TextStrategy, hookimpl


class {class_name}(TextStrategy):
    identifier = {identifier!r}
    for_code = False
    name = {name!r}

    def encode_text(self, obj):
        return str(obj)

    def decode_text(self, text):
        return "decoded by {class_name}: " + text


@hookimpl
def freight_strategies():
    return [{class_name}]
"""
