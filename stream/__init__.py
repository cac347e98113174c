"""streamscore: score a Kafka stream with an ONNX model, with provenance and drift monitoring."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamscore")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
