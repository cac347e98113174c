"""The worker's registered formats, chosen and checked once at start-up.

:func:`wire_codecs` gives the pipeline its input decoder (into the contract of the event's shape,
:class:`~stream.scoring.events.EventShape`) and the serializers of predictions and provenance. For a
registered input format the schema registered as ``<input topic>-value`` must carry the model
card's features in that shape; when none is registered yet, the worker registers the one it makes
from the card. For a registered output format the Prediction and Provenance schemas are registered
as ``<topic>-value`` under a compatibility level of at least ``BACKWARD`` (set on the subject when
the registry says ``NONE``), so a change that breaks compatibility stops start-up with the
registry's reason. Each failure is a one-line :class:`~stream.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from stream.contracts import ModelCard, Provenance
from stream.errors import ConfigError, DecodeError
from stream.formats.base import OUTPUTS
from stream.formats.bounds import SchemaLimits
from stream.formats.codecs import SCHEMA_TYPES, Decoder, codec
from stream.formats.lookup import RegistryLookups
from stream.formats.registry import one_line, registry_client, registry_errors, subject
from stream.scoring.codec import BatchDecoder
from stream.scoring.events import DEFAULT_SHAPE, EventShape
from stream.scoring.records import JSON_VALUES, Serialize
from stream.settings import Settings, WireFormat

Serializers = tuple[Serialize, Serialize]
NOT_FOUND = (40401, 40402)  # subject, version not found


def wire_codecs(settings: Settings, card: ModelCard) -> tuple[Decoder, Serializers]:
    """The input decoder, into the contract of the event's shape the settings give, and the
    prediction and provenance serializers the settings ask for."""
    if settings.input_format == "json" and settings.output_format == "json":
        return _json_decoder(settings), JSON_VALUES
    client = registry_client(settings)
    with registry_errors(settings.schema_registry_url, settings.schema_registry_timeout_s):
        return _decoder(client, settings, card), _serializers(client, settings)


def provenance_reader(settings: Settings) -> Callable[[bytes], Provenance] | None:
    """How the outcome worker reads provenance in the worker's output format; None for JSON."""
    if settings.output_format == "json":
        return None
    from stream.formats.reader import WireReader

    read = WireReader(registry_client(settings))

    def provenance(value: bytes) -> Provenance:
        decoded = read(value)
        if decoded is None or not isinstance(decoded[1], dict):
            raise DecodeError(
                f"not a registered provenance record ({decoded[0] if decoded else 'no header'})"
            )
        return Provenance.model_validate(decoded[1])

    return provenance


def event_schema(kind: WireFormat, card: ModelCard, shape: EventShape = DEFAULT_SHAPE) -> Schema:
    """The input schema streamscore makes for a card and an event shape, in the registry's form."""
    return Schema(codec(kind).event_schema(card, shape), SCHEMA_TYPES[kind])


def output_schema(kind: WireFormat, name: str) -> Schema:
    """The schema of an output contract (``prediction``, ``provenance``) in a registered format."""
    return Schema(codec(kind).output_schema(OUTPUTS[name]), SCHEMA_TYPES[kind])


def _json_decoder(settings: Settings) -> Decoder:
    """Plain JSON values validated as a batch into the contract of the event's shape."""
    return BatchDecoder(settings.max_message_bytes, EventShape.of(settings).contract)


def _decoder(client: SchemaRegistryClient, settings: Settings, card: ModelCard) -> Decoder:
    """The input decoder, holding the schema registered as the input subject (registered from the
    card when there is none) once it is checked: within the bounds, carrying the card's features in
    the event's shape."""
    kind, shape = settings.input_format, EventShape.of(settings)
    if kind == "json":
        return _json_decoder(settings)
    lookups, limits, format_ = RegistryLookups(settings), SchemaLimits.of(settings), codec(kind)
    decoder = format_.decoder(lookups, card, settings.max_message_bytes, limits, shape)
    name = subject(settings.input_topic)
    latest = _latest(client, settings, name)
    if latest is None:
        schema = event_schema(kind, card, shape)
        schema_id = register(client, name, schema)
        where = f"the schema made for {name} from the card (id {schema_id})"
    else:
        schema, schema_id = latest.schema, latest.schema_id
        where = f"the schema registered as {name} (version {latest.version}, id {schema_id})"
        if (schema.schema_type or "AVRO") != SCHEMA_TYPES[kind]:
            raise ConfigError(
                f"{name} holds a {schema.schema_type or 'AVRO'} schema, not {SCHEMA_TYPES[kind]}: "
                f"set STREAMSCORE_INPUT_FORMAT to its format"
            )
    refused = decoder.schemas.pin(schema_id, Schema(schema.schema_str, SCHEMA_TYPES[kind]))
    if refused is not None:
        raise ConfigError(f"{where} is refused: {refused}")
    reason = format_.refusal(schema.schema_str, card, shape)
    if reason is not None:
        raise ConfigError(
            f"{where} cannot carry the features of model {card.name} {card.version}: {reason}; "
            "register one that can, or name the event's fields (STREAMSCORE_EVENT_ID_FIELD, "
            "STREAMSCORE_EVENT_TIME_FIELD, STREAMSCORE_FEATURES_FIELD, STREAMSCORE_UNKNOWN_FIELDS)"
        )
    return decoder


def _latest(client: SchemaRegistryClient, settings: Settings, name: str) -> RegisteredSchema | None:
    """The latest version registered as ``name``; None if there is none."""
    try:
        return client.get_latest_version(name)
    except SchemaRegistryError as exc:
        if exc.error_code not in NOT_FOUND:
            raise ConfigError(
                f"schema registry {settings.schema_registry_url}: cannot read {name}: "
                f"{one_line(exc.error_message)} (HTTP {exc.http_status_code})"
            ) from None
    return None


def _serializers(client: SchemaRegistryClient, settings: Settings) -> Serializers:
    kind = settings.output_format
    if kind == "json":
        return JSON_VALUES
    made = []
    for name, topic in (("prediction", settings.prediction_topic), ("provenance", settings.provenance_topic)):
        schema = output_schema(kind, name)
        made.append(codec(kind).serializer(register(client, subject(topic), schema), schema.schema_str))
    return made[0], made[1]


def register(client: SchemaRegistryClient, name: str, schema: Schema) -> int:
    """Register ``schema`` as ``name`` under at least BACKWARD compatibility; its id.

    A schema the registry refuses as incompatible raises :class:`ConfigError` with its reason.
    """
    try:
        level = client.get_compatibility(name)
    except SchemaRegistryError:  # no level of the subject's own: the registry's
        level = client.get_compatibility()
    if level == "NONE":
        client.set_compatibility(name, "BACKWARD")
        level = "BACKWARD"
    try:
        return client.register_schema(name, schema)
    except SchemaRegistryError as exc:
        if exc.http_status_code != 409:
            raise ConfigError(f"schema registry refused the schema of {name}: {exc.error_message}") from None
        raise ConfigError(
            f"the schema for {name} is not {level} compatible with the one registered "
            f"({exc.error_message}): register it under a new topic, or change the compatibility of {name}"
        ) from None
