"""The conformance suite: every check a strategy must pass, as one test class.

A strategy author writes one line in a test module::

    TestZstdPickle = strategy_conformance(ZstdPickle, values=picklable_values())

and pytest collects a class of tests (``freight.testing.pytest_plugin`` also
collects it under a lowercase ``test_...`` name).  Subclassing works too, and lets
a check be overridden or skipped::

    class TestZstdPickle(StrategyConformance):
        strategy = ZstdPickle
        values = picklable_values()

The checks, each its own test:

* declarations -- ``identifier``, ``for_code``, ``name``, ``properties`` well-formed;
  the class instantiable with no arguments;
* identifier -- two ASCII characters and a newline, inside the allocation policy
  (``freight.serialize.identifiers``), and claimed by no other registered strategy;
* registration -- found in the default registry (installed, with its entry point);
* round trip -- in every envelope (text, blob, frames), over the declared domain;
* malformed input -- truncated, bit-flipped, extended, garbage and oversized
  payloads in every envelope raise only ``DeserializationError`` through
  ``ComputeSerializer``, without hanging or allocating wildly; and (``strict_errors``)
  the strategy's own decoders raise only ``DeserializationError`` too;
* determinism -- only if the strategy declares ``Property.DETERMINISTIC``: the same
  value serializes to the same bytes again, as a deep copy, and in a fresh
  interpreter with another hash seed;
* zero copy -- only if it declares ``Property.ZERO_COPY``: a large buffer travels
  as an out-of-band frame, and a decoded numpy array is a view of the received frame.

How many hypothesis examples each property runs: ``--freight-examples N`` on the
command line, else ``$FREIGHT_EXAMPLES``, else the class's ``max_examples``, else 25.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from freight.serialize import (
    DeserializationError,
    PluginError,
    Property,
    SerdeError,
    SerializationStrategy,
    binary,
    default_registry,
)
from freight.serialize.envelope import FRAMES, TEXT, Envelope, envelope_named
from freight.testing import identifier_policy
from freight.testing.assertions import (
    DECODE_TIME_LIMIT,
    ENVELOPES,
    KitSerializer,
    Strategy,
    assert_deterministic,
    assert_deterministic_across_processes,
    assert_rejects_malformed,
    assert_roundtrip,
    kit_serializer,
    payload_of,
    shares_memory,
    short_repr,
)
from freight.testing.malformed import (
    DAMAGE,
    Damaged,
    DamagePlan,
    apply_damage,
    damage_plans,
)
from freight.testing.sample_callables import CallableCase, callables

#: Examples per hypothesis property when nothing says otherwise.
DEFAULT_EXAMPLES = 25
#: The environment variable that sets the number of examples.
EXAMPLES_ENV = "FREIGHT_EXAMPLES"

MiB = 1 << 20


def examples_setting(config: pytest.Config | None, default: int | None) -> int:
    """The number of examples: the command line, the environment, the class, 25."""
    if config is not None:
        option = config.getoption("freight_examples", default=None)
        if option:
            return int(option)
    env = os.environ.get(EXAMPLES_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise pytest.UsageError(
                f"{EXAMPLES_ENV} must be a whole number, got {env!r}"
            ) from None
    return default or DEFAULT_EXAMPLES


class Shown:
    """A drawn value whose repr stays short (hypothesis prints it on failure)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return short_repr(self.value, 1000)


class StrategyConformance:
    """The conformance checks for ``strategy``; subclass it and set the attributes,
    or let ``strategy_conformance`` do it."""

    #: The strategy under test: a ``SerializationStrategy`` subclass or instance.
    strategy: ClassVar[Strategy | None] = None
    #: A data strategy's domain: the values it promises to give back unchanged.
    values: ClassVar[SearchStrategy[Any] | None] = None
    #: A code strategy's domain (``freight.testing.callables()`` strategies);
    #: default: every shape, importable and by value.
    callables: ClassVar[SearchStrategy[CallableCase] | None] = None
    #: The envelopes the round-trip and malformed-input checks use: ``Envelope``
    #: objects or their names; a new ``Envelope`` subclass's instance works too.
    envelopes: ClassVar[tuple[str | Envelope, ...]] = ENVELOPES
    #: Require the strategy to be in the default registry (installed, entry point).
    registered: ClassVar[bool] = True
    #: Also require the strategy's own ``deserialize`` / ``from_frames`` to raise
    #: only ``DeserializationError``.  Off by default: the contract (the reference
    #: SDK's) lets a strategy raise anything and ``ComputeSerializer`` wraps it;
    #: turn it on if callers use the strategy directly.
    strict_errors: ClassVar[bool] = False
    #: Hypothesis examples per property (``--freight-examples`` overrides it).
    max_examples: ClassVar[int | None] = None
    #: The kinds of damage the malformed-input checks apply.  A pickle-family
    #: strategy (not ``SAFE_FOR_UNTRUSTED``) may leave out "bit-flipped" and
    #: "garbage": CPython's unpickler sizes its memo table by an index read from
    #: the input, so a flipped byte can make it allocate and zero gigabytes.
    damages: ClassVar[tuple[str, ...]] = DAMAGE
    #: Bytes of junk in "oversized" payloads.
    oversized_size: ClassVar[int] = 4 * MiB
    #: Seconds one malformed decode may take before it counts as a hang.
    decode_seconds: ClassVar[float] = DECODE_TIME_LIMIT
    #: Peak bytes one malformed decode may allocate (``None``: 32x the input,
    #: at least 64 MiB).
    memory_limit: ClassVar[int | None] = None
    #: Further ``hypothesis.settings`` for every property (``phases``,
    #: ``derandomize``, ``report_multiple_bugs`` ...).
    hypothesis_settings: ClassVar[Mapping[str, Any]] = {}

    #: Marks classes whose tests pytest should collect under any name.
    __freight_conformance__: ClassVar[bool] = False
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.freight_conformance]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.strategy is None:
            return
        strategy_cls = _class_of(cls.strategy)
        for_code = getattr(strategy_cls, "for_code", None)
        if for_code is False and cls.values is None:
            raise TypeError(
                f"{cls.__name__}: {strategy_cls.__name__} is a data strategy; declare"
                " the values it carries, e.g. values=json_values()"
            )
        if for_code is True and cls.values is not None:
            raise TypeError(
                f"{cls.__name__}: {strategy_cls.__name__} is a code strategy; declare"
                " callables=..., not values="
            )
        try:
            cls.envelopes = tuple(envelope_named(e) for e in cls.envelopes)
        except ValueError as e:
            raise TypeError(f"{cls.__name__}: {e}") from None
        unknown_damage = set(cls.damages) - set(DAMAGE)
        if unknown_damage:
            raise TypeError(f"{cls.__name__}: unknown damages {unknown_damage}")
        cls.__freight_conformance__ = True

    # -- parametrization --------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        names = metafunc.fixturenames
        if "envelope" in names and "damage" in names:
            metafunc.parametrize(
                ("envelope", "damage"),
                [(e, d) for e in self.envelopes for d in self.damages],
                ids=[f"{e}-{d}" for e in self.envelopes for d in self.damages],
            )
        elif "envelope" in names:
            metafunc.parametrize("envelope", self.envelopes)
        if "decoder" in names:
            metafunc.parametrize("decoder", ["deserialize", "from_frames"])
        if "where" in names:
            metafunc.parametrize("where", ["in-process", "across-processes"])

    # -- helpers ----------------------------------------------------------------------

    @property
    def _strategy(self) -> SerializationStrategy:
        assert self.strategy is not None
        return kit_serializer(self.strategy).strategy

    @property
    def _cls(self) -> type[SerializationStrategy]:
        assert self.strategy is not None
        return _class_of(self.strategy)

    def _domain(self) -> SearchStrategy[Any]:
        """The declared domain; data values come wrapped in ``Shown`` so that a
        falsifying example prints a readable repr even for megabyte buffers."""
        if self._strategy.for_code:
            return self.callables if self.callables is not None else callables()
        assert self.values is not None
        return self.values.map(Shown)

    def _seed(self, drawn: Any) -> Any:
        """The value to serialize for a drawn domain element."""
        if isinstance(drawn, CallableCase):
            return drawn.function
        return drawn.value if isinstance(drawn, Shown) else drawn

    def _run(
        self,
        request: pytest.FixtureRequest,
        test: Callable[..., None],
        *strategies: SearchStrategy[Any],
    ) -> None:
        """Run ``test`` as a hypothesis property over ``strategies``."""
        options: dict[str, Any] = {
            "deadline": None,
            "suppress_health_check": [
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
                HealthCheck.filter_too_much,
            ],
            **self.hypothesis_settings,
            "max_examples": examples_setting(request.config, self.max_examples),
        }
        configured = settings(**options)
        run = configured(given(*strategies)(test))
        inner = getattr(getattr(run, "hypothesis", None), "inner_test", None)
        if inner is not None:
            # One example database entry per generated test, not one shared by all.
            inner._hypothesis_internal_add_digest = request.node.nodeid.encode()
        try:
            run()
        except Exception as e:
            # Hypothesis' own errors (FlakyStrategyDefinition, FlakyFailure ...)
            # name no strategy; every failure of a property says which one.
            e.add_note(f"freight conformance kit: strategy {self._describe()}")
            raise

    def _describe(self) -> str:
        cls = self._cls
        return (
            f"{cls.__module__}.{cls.__qualname__}"
            f" (identifier {getattr(cls, 'identifier', None)!r},"
            f" name {getattr(cls, 'name', None)!r})"
        )

    # -- declarations and identity ----------------------------------------------------

    def test_declarations_are_well_formed(self) -> None:
        cls = self._cls
        assert isinstance(cls.for_code, bool), f"{cls.__name__}.for_code must be a bool"
        assert isinstance(cls.name, str) and cls.name.strip(), (
            f"{cls.__name__}.name must be a non-empty str"
        )
        assert isinstance(cls.properties, Property), (
            f"{cls.__name__}.properties must be a Property flag"
        )
        assert isinstance(cls.text_body, bool), (
            f"{cls.__name__}.text_body must be a bool"
        )
        assert not (cls.decode_only and cls.properties & Property.DETERMINISTIC), (
            f"{cls.__name__} is decode_only, so it makes no payloads to be"
            " deterministic about"
        )
        try:
            cls()
        except Exception as e:
            raise AssertionError(
                f"{cls.__name__}() failed: freight makes one instance per registry"
                f" with no arguments: {type(e).__name__}: {e}"
            ) from e

    def test_identifier_is_two_ascii_characters_and_a_newline(self) -> None:
        identifier = self._cls.identifier
        assert isinstance(identifier, str) and len(identifier) == 3, (
            f"identifier must be a 3-character str, got {identifier!r}"
        )
        assert identifier[2] == "\n", (
            f"identifier must end with a newline, got {identifier!r}"
        )
        head = identifier[:2]
        assert (
            head.isascii() and head.isprintable() and not any(c.isspace() for c in head)
        ), (
            f"the two characters of {identifier!r} must be printable ASCII without"
            " spaces (the binary header stores them as ASCII)"
        )

    def test_identifier_follows_the_allocation_policy(self) -> None:
        cls = self._cls
        problem = identifier_policy.allocation_problem(
            cls.identifier,
            builtin=identifier_policy.is_builtin(cls),
            owner=f"{cls.__module__}.{cls.__qualname__}",
        )
        assert problem is None, problem

    def test_identifier_and_name_are_unique(self) -> None:
        cls = self._cls
        registry = default_registry()
        try:
            records = list(registry)
        except PluginError as e:
            raise AssertionError(f"the installed plugins do not load: {e}") from e
        for rec in records:
            if rec.cls is cls:
                continue
            assert rec.identifier != cls.identifier, (
                f"identifier {cls.identifier!r} of {cls.__name__} is already claimed by"
                f" {rec.describe()}"
            )
            assert rec.name != cls.name, (
                f"name {cls.name!r} of {cls.__name__} is already claimed by"
                f" {rec.describe()}"
            )
        statuses = getattr(registry, "plugin_statuses", None)
        for status in statuses() if statuses else ():
            if status.state == "failed" and cls.identifier.strip() in status.reason:
                raise AssertionError(
                    f"plugin {status.name!r} ({status.distribution}) failed to load:"
                    f" {status.reason}"
                )

    def test_is_registered_through_an_entry_point(self) -> None:
        cls = self._cls
        if not self.registered:
            pytest.skip("registered=False: the strategy is tested unregistered")
        try:
            rec = default_registry().resolve(cls)
        except SerdeError as e:
            statuses = getattr(default_registry(), "plugin_statuses", None)
            failures = [
                f"{s.name} ({s.distribution}): {s.state}: {s.reason}"
                for s in (statuses() if statuses else ())
                if s.state != "loaded"
            ]
            raise AssertionError(
                f"{cls.__name__} is not in the default registry: declare it under"
                ' [project.entry-points."freight.strategies"] and install the'
                " package (pip install -e .); or pass registered=False."
                + (f" Plugins not loaded: {'; '.join(failures)}" if failures else "")
            ) from e
        assert rec.plugin.distribution is not None, (
            f"{cls.__name__} was registered at run time ({rec.plugin}), not through"
            " an entry point"
        )

    # -- round trips ------------------------------------------------------------------

    def test_roundtrip(
        self, envelope: Envelope, request: pytest.FixtureRequest
    ) -> None:
        strategy = self.strategy
        assert strategy is not None
        if self._strategy.for_code:

            def check_callable(case: CallableCase, data: st.DataObject) -> None:
                args, kwargs = data.draw(case.arguments, label="arguments")
                assert_roundtrip(
                    strategy,
                    case.function,
                    envelopes=(envelope,),
                    args=args,
                    kwargs=kwargs,
                )

            self._run(request, check_callable, self._domain(), st.data())
            return

        def check_value(value: Shown) -> None:
            assert_roundtrip(strategy, value.value, envelopes=(envelope,))

        self._run(request, check_value, self._domain())

    # -- malformed input --------------------------------------------------------------

    def test_malformed_input_raises_only_deserialization_error(
        self, envelope: Envelope, damage: str, request: pytest.FixtureRequest
    ) -> None:
        self._run(
            request,
            self._malformed_property(envelope, strict=False),
            self._domain(),
            damage_plans(damage, oversized_size=self.oversized_size),
        )

    def test_decoder_raises_only_deserialization_error(
        self, decoder: str, request: pytest.FixtureRequest
    ) -> None:
        if not self.strict_errors:
            pytest.skip(
                "strict_errors=False: only ComputeSerializer's wrapped errors are"
                " checked"
            )
        envelope = TEXT if decoder == "deserialize" else FRAMES
        plans = st.sampled_from(self.damages).flatmap(
            lambda damage: damage_plans(damage, oversized_size=self.oversized_size)
        )
        self._run(
            request,
            self._malformed_property(envelope, strict=True),
            self._domain(),
            plans,
        )

    def _malformed_property(
        self, envelope: Envelope, *, strict: bool
    ) -> Callable[[Any, DamagePlan], None]:
        """The check for one drawn value and damage plan.  Everything hypothesis
        draws (the value, the plan) is drawn before the strategy encodes, so a
        strategy whose payloads vary between encodes gets the same draws when an
        example is replayed; and the seed payload of a value is remembered for the
        run (``_Seeds``), so a replayed example damages the very same payload and a
        failure reproduces while hypothesis shrinks it."""
        strategy = self.strategy
        assert strategy is not None
        seeds = _Seeds()

        def check(drawn: Any, plan: DamagePlan) -> None:
            value = self._seed(drawn)
            seed = seeds.get(value)
            if seed is None:
                try:
                    seed = payload_of(strategy, envelope, value)
                except SerdeError:
                    return  # outside what the strategy encodes: the round trip says
                seeds.put(value, seed)
            payload = apply_damage(plan, strategy, envelope, seed)
            note(f"damaged payload: {Damaged(payload)!r}")
            assert_rejects_malformed(
                strategy,
                payload,
                allow_success=True,
                strict=strict,
                seconds=self.decode_seconds,
                memory_limit=self.memory_limit,
                envelope=envelope,
            )

        return check

    # -- declared properties ----------------------------------------------------------

    def test_deterministic(self, where: str, request: pytest.FixtureRequest) -> None:
        cls = self._cls
        if Property.DETERMINISTIC not in cls.properties:
            pytest.skip(f"{cls.__name__} does not declare Property.DETERMINISTIC")
        strategy = self.strategy
        assert strategy is not None
        if where == "in-process":

            def check(drawn: Any) -> None:
                assert_deterministic(strategy, self._seed(drawn))

            self._run(request, check, self._domain())
            return
        if self._strategy.for_code:
            pytest.skip("functions cannot be sent to another process to compare")
        sample: list[Any] = []

        def collect(value: Shown) -> None:
            sample.append(value.value)

        settings(
            max_examples=examples_setting(request.config, self.max_examples),
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(self._domain())(collect))()
        assert_deterministic_across_processes(cls, sample)

    def test_zero_copy(self) -> None:
        """Each large buffer type the strategy accepts (bytes, bytearray,
        memoryview, PickleBuffer, a numpy array where numpy is installed) must go
        out as a frame that *is* the value's memory (encode), and come back as a
        value that *is* the received frame's memory (decode).  A bytearray owns
        its memory, so its decode cannot be a view: only its encode is checked."""
        cls = self._cls
        if Property.ZERO_COPY not in cls.properties:
            pytest.skip(f"{cls.__name__} does not declare Property.ZERO_COPY")
        if cls.for_code:
            pytest.skip("ZERO_COPY is about data buffers")
        strategy = self.strategy
        assert strategy is not None
        size = 4 * MiB
        kit = kit_serializer(strategy)
        accepted = []
        for kind, candidate in _large_buffer_candidates(size):
            try:
                frames = kit.encode(FRAMES, candidate)
            except SerdeError:
                continue  # a type the strategy does not carry
            accepted.append(kind)
            _check_zero_copy(kit, cls, kind, candidate, frames, size)
        assert accepted, (
            f"{cls.__name__} declares Property.ZERO_COPY but serializes none of"
            f" {', '.join(k for k, _ in _large_buffer_candidates(0))}"
        )


def _check_zero_copy(
    kit: KitSerializer,
    cls: type[SerializationStrategy],
    kind: str,
    value: Any,
    frames: list[Any],
    size: int,
) -> None:
    """One buffer type's zero-copy round trip: out-of-band, uncopied, both ways."""
    message = binary.parse_message(frames)
    largest = max((b.nbytes for b in message.buffers), default=0)
    claim = f"{cls.__name__} declares Property.ZERO_COPY, but a {size}-byte {kind}"
    assert largest >= size and len(message.body) < size // 4, (
        f"{claim} was not carried as an out-of-band frame (body"
        f" {len(message.body)} bytes, buffers {[b.nbytes for b in message.buffers]})"
    )
    assert any(shares_memory(frame, value) for frame in frames[2:]), (
        f"{claim} was copied on encode: no out-of-band frame is the value's memory"
        " (hand the buffer itself, a memoryview or a PickleBuffer of it, to"
        " to_frames)"
    )
    if kind == "bytearray":
        return  # a bytearray owns its memory: decoding one always copies
    received = FRAMES.received(frames)
    try:
        decoded = kit.decode(FRAMES, received)
    except DeserializationError as e:
        raise AssertionError(f"{cls.__name__} could not decode a {kind}: {e}") from e
    assert any(shares_memory(decoded, frame) for frame in received[2:]), (
        f"{claim} came back as a copy ({type(decoded).__name__}), not a view of"
        " the received frame"
    )


def _large_buffer_candidates(size: int) -> list[tuple[str, Any]]:
    """Large values of each buffer type a zero-copy data strategy may carry."""
    data = os.urandom(size)
    candidates: list[tuple[str, Any]] = [
        ("bytes", data),
        ("bytearray", bytearray(data)),
        ("memoryview", memoryview(bytearray(data))),
        ("PickleBuffer", pickle.PickleBuffer(bytearray(data))),
    ]
    try:
        import numpy as np
    except ImportError:
        return candidates
    return [*candidates, ("numpy array", np.arange(size // 8, dtype="float64"))]


class _Seeds:
    """Valid payloads by the repr of the value they encode, for one property run,
    up to ``budget`` bytes.  Any valid payload serves as a seed, so two values with
    one repr (a summarised numpy repr) sharing a payload is harmless; a value whose
    repr fails or differs each time (an object address) is simply encoded again."""

    def __init__(self, budget: int = 64 * MiB) -> None:
        self._payloads: dict[tuple[type, str], Any] = {}
        self._left = budget

    @staticmethod
    def _key(value: Any) -> tuple[type, str] | None:
        try:
            return type(value), repr(value)
        except Exception:
            return None

    def get(self, value: Any) -> Any:
        key = self._key(value)
        return None if key is None else self._payloads.get(key)

    def put(self, value: Any, payload: Any) -> None:
        key = self._key(value)
        size = len(payload) if isinstance(payload, str) else _frames_size(payload)
        if key is not None and size <= self._left:
            self._payloads[key] = payload
            self._left -= size


def _frames_size(payload: Any) -> int:
    if isinstance(payload, list | tuple):
        return sum(memoryview(f).nbytes for f in payload)
    return memoryview(payload).nbytes


def _class_of(strategy: Strategy) -> type[SerializationStrategy]:
    return strategy if isinstance(strategy, type) else type(strategy)


def strategy_conformance(
    strategy: Strategy,
    *,
    values: SearchStrategy[Any] | None = None,
    callables: SearchStrategy[CallableCase] | None = None,
    **options: Any,
) -> type[StrategyConformance]:
    """The conformance test class for ``strategy``; assign it in a test module.

    ``values`` (data strategies) or ``callables`` (code strategies; default: every
    shape) is the domain the strategy promises to carry.  ``options`` set any other
    ``StrategyConformance`` attribute: ``envelopes``, ``registered``,
    ``strict_errors``, ``max_examples``, ``oversized_size``, ``decode_seconds``,
    ``memory_limit``, ``damages``, ``hypothesis_settings``.
    """
    unknown = sorted(
        k
        for k in options
        if k.startswith("_")
        or not hasattr(StrategyConformance, k)
        or callable(getattr(StrategyConformance, k))
    )
    if unknown:
        raise TypeError(f"strategy_conformance() got unknown options {unknown}")
    name = f"Test{_class_of(strategy).__name__}Conformance"
    namespace: dict[str, Any] = {
        "strategy": strategy,
        "values": values,
        "callables": callables,
        "__module__": _caller_module(),
        **options,
    }
    return type(name, (StrategyConformance,), namespace)


def _caller_module() -> str:
    """The module that called ``strategy_conformance`` (the class's home)."""
    frame = sys._getframe(2)
    return str(frame.f_globals.get("__name__", __name__))
