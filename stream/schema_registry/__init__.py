"""The Confluent wire format and a schema registry: input, output and tools in JSON Schema and Avro.

- :mod:`.client`: the registry client built from the settings, the wire header, the schema cache;
- :mod:`.schemas`: the Avro and JSON Schema forms of the contracts (the event's from the model card);
- :mod:`.carry`: whether a registered input schema can carry the card's features;
- :mod:`.decode`: registered input values to validated events, poison to dead letters;
- :mod:`.encode`: predictions and provenance to the wire format (:mod:`.avro_writer` writes Avro);
- :mod:`.startup`: the decoder and serializers a worker uses, chosen and checked once at start-up;
- :mod:`.tools`: ``produce --format`` and ``tail``;
- :mod:`.apicurio`: Apicurio Registry from Maven Central, run on loopback (tests, the demo).

Nothing here is imported on the plain JSON path.
"""
