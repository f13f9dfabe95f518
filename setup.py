"""The optional C accelerator; everything else is in pyproject.toml.

``freight.serialize._accel`` is the C twin of ``freight.serialize.fastpath``'s
``PyFastPath``.  It is optional: without a compiler the build skips it with a
warning and the pure-Python twin serves, with the same behaviour.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "freight.serialize._accel",
            sources=["serialize/_accel.c"],
            optional=True,
        )
    ]
)
