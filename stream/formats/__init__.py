"""Registered wire formats: Avro and JSON Schema values behind a schema registry's header.

Plain JSON needs none of this: nothing here is imported on the JSON path. A format's schemas, its
check that a registered schema carries the card's features, its decoder and its serializer live
in one module.

- :mod:`.base`: what every registered format shares (the event's envelope, the output contracts);
- :mod:`.avro`: Avro, read by :mod:`.avro_reader` and written by :mod:`.avro_writer` (code
  generated per schema);
- :mod:`.json_schema`: JSON Schema;
- :mod:`.registry`: the registry client from the settings, the wire header, writer schemas by id;
- :mod:`.startup`: the decoder and serializers a worker uses, chosen and checked once at start-up;
- :mod:`.reader`: any registered value, read by the writer schema its header names;
- :mod:`.events`: JSON events into a registered format (``produce --format``, the demo);
- :mod:`.avro_bounds`: how many values an Avro message may make: the bounds both Avro readers keep;
- :mod:`.bounds`: what a writer's schema may cost, and how often the registry may be asked about new
  ids;
- :mod:`.lookup`: the worker's lookups of writer schemas by id: one bounded request each.
"""
