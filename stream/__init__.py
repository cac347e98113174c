"""streamscore: score a Kafka stream with an ONNX model, with provenance and drift monitoring.

The foundation stands here: :mod:`.settings`, :mod:`.errors`, :mod:`.contracts`, :mod:`.messages`,
:mod:`.keys`, :mod:`.logs`, :mod:`.processes`, :mod:`.contract_types`, :mod:`.terminal`,
:mod:`.settings.topics`. Each package imports only the foundation and the packages before it in this
list:

- :mod:`.scoring`: the data path, pure: bytes to an event, a feature row, a score, records;
- :mod:`.formats`: registered wire formats (Avro, JSON Schema) behind a schema registry;
- :mod:`.drift`: drift and performance statistics; :mod:`.kafka`: Kafka plumbing;
- :mod:`.lifecycle`: where models come from, and how a new one takes over;
- :mod:`.worker`: the scoring worker; :mod:`.outcomes`: the outcome worker;
  :mod:`.audit`: explain, verify and replay;
- :mod:`.tools`: a broker, a registry and traffic for tests and the demo;
  :mod:`.cli`: the ``streamscore`` command line.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamscore")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
