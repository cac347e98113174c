"""Registered wire formats: Avro, JSON Schema and Protobuf values behind a schema registry's header.

Plain JSON needs none of this: nothing here is imported on the JSON path. A format's schemas, its
check that a registered schema carries the card's features, its decoder and its serializer live
in its own modules, and end in the :class:`~.codecs.Codec` that :func:`~.codecs.codec` finds by name.

- :mod:`.codecs`: the formats by name, and what each gives the worker and the commands;
- :mod:`.base`: what every registered format shares (the event's envelope, the output contracts);
- :mod:`.avro`: Avro, read by :mod:`.avro_reader` and written by :mod:`.avro_writer` (code
  generated per schema);
- :mod:`.json_schema`: JSON Schema;
- :mod:`.protobuf`: Protobuf, its writer schemas compiled at run time;
- :mod:`.registry`: the registry client from the settings, the wire header, writer schemas by id;
- :mod:`.startup`: the decoder and serializers a worker uses, chosen and checked once at start-up;
- :mod:`.reader`: any registered value, read by the writer schema its header names;
- :mod:`.events`: JSON events into a registered format (``produce --format``, the demo);
- :mod:`.avro_bounds`: how many values an Avro message may make: the bounds both Avro readers keep;
- :mod:`.bounds`: what a writer's schema may cost, and how often the registry may be asked about new
  ids;
- :mod:`.lookup`: the worker's lookups of writer schemas by id: one bounded request each.

A writer's schema (each new id) must carry the model card's features in the event's shape: events of
one that cannot (a feature removed, a number become a string) are dead letters naming the field, the
schema id and its subject's version.
"""
