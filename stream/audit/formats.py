"""Reading the worker's records in the format it was configured with: JSON, or a registered one.

With ``STREAMSCORE_INPUT_FORMAT`` or ``STREAMSCORE_OUTPUT_FORMAT`` set to ``avro``, ``json-schema``
or ``protobuf``, inputs and provenance are in Confluent's wire format: they are decoded with the
schema registry (``STREAMSCORE_SCHEMA_REGISTRY_URL``) by the worker's own decoders, so that an audit
reads exactly what the worker read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from stream.contracts import Event, ModelCard, Prediction, Provenance
from stream.errors import PoisonEvent
from stream.messages import Inbound
from stream.scoring.codec import decode
from stream.scoring.events import EventShape
from stream.settings import Settings

__all__ = ["Formats"]

Decoded = list[Event | PoisonEvent]


@dataclass
class Formats:
    """Decoders of the inputs and the provenance records of one deployment."""

    settings: Settings
    _client: Any = None
    _read_provenance: Callable[[bytes], Provenance] | None = None
    _wire: Callable[[bytes | None], tuple[str, object] | None] | None = None
    _decoders: dict[str, Callable[[Sequence[bytes | None]], Decoded]] = field(default_factory=dict)

    def _registry(self) -> Any:
        if self._client is None:
            from stream.formats.registry import registry_client

            self._client = registry_client(self.settings)
        return self._client

    def inputs(self, card: ModelCard, msgs: Sequence[Inbound]) -> Decoded:
        """The events of ``msgs`` (or why each is not one), as the worker of ``card`` decodes them: in
        the event shape of the settings, an id or time left out taken from the record."""
        kind, max_bytes, shape = self.settings.input_format, self.settings.max_message_bytes, self._shape
        if kind == "json":
            return self._json(msgs)
        if card.sha256 not in self._decoders:
            from stream.formats.codecs import codec

            self._decoders[card.sha256] = codec(kind).decoder(self._registry(), card, max_bytes, None, shape)
        decoded = self._decoders[card.sha256]([msg.value() for msg in msgs])
        if shape.completes:
            shape.complete(msgs, decoded)
        return decoded

    def _json(self, msgs: Sequence[Inbound]) -> Decoded:
        shape, max_bytes = self._shape, self.settings.max_message_bytes
        decoded: Decoded = [
            _or_poison(lambda m=m: decode(m.value(), max_bytes, shape.contract)) for m in msgs
        ]
        if shape.completes:
            shape.complete(msgs, decoded)
        return decoded

    def event_id(self, msg: Inbound) -> str | None:
        """The event id of an input, when its envelope is readable (the record's key or place when
        the shape lets an event leave it out)."""
        if self.settings.input_format == "json":
            got = self._json([msg])[0]
            return None if isinstance(got, PoisonEvent) else got.event_id
        from stream.formats.reader import WireReader

        decoded = WireReader(self._registry())(msg.value())
        doc = decoded[1] if decoded is not None else None
        found = doc.get(self._shape.id_field) if isinstance(doc, dict) else None
        return found if isinstance(found, str) else None

    @property
    def _shape(self) -> EventShape:
        return EventShape.of(self.settings)

    def provenance(self, value: bytes | None) -> Provenance | str:
        """The provenance record in ``value``, or why it breaks the contract."""
        try:
            if self.settings.output_format == "json":
                return Provenance.model_validate_json(value or b"")
            if self._read_provenance is None:
                from stream.formats.startup import provenance_reader

                self._read_provenance = provenance_reader(self.settings)
            read = self._read_provenance
            assert read is not None  # the output format is a registered one
            return read(value or b"")
        except ValidationError as exc:
            first = exc.errors()[0]
            return f"{'.'.join(str(p) for p in first['loc']) or 'record'}: {first['msg']}"
        except PoisonEvent as exc:
            return str(exc)

    def prediction(self, value: bytes | None) -> Prediction | None:
        """The prediction record in ``value``; None when it is not one (it cannot be read)."""
        try:
            if self.settings.output_format == "json":
                return Prediction.model_validate_json(value or b"")
            if self._wire is None:
                from stream.formats.reader import WireReader

                self._wire = WireReader(self._registry())
            decoded = self._wire(value)
            doc = decoded[1] if decoded is not None else None
            return Prediction.model_validate(doc) if isinstance(doc, dict) else None
        except (ValidationError, PoisonEvent):
            return None


def _or_poison(call: Callable[[], Event]) -> Event | PoisonEvent:
    try:
        return call()
    except PoisonEvent as exc:
        return exc
