"""The audit commands' errors, each a one-line answer to the user.

StreamscoreError
└── AuditError          a record or model the command needs is not there (exit code 2)
    ├── NotFound        no provenance or dead letter for the event in the range searched
    ├── InputGone       the input record has left its topic (retention, deleted records)
    └── ModelGone       no model in the registry has the sha256 the provenance names
"""

from __future__ import annotations

from stream.errors import StreamscoreError


class AuditError(StreamscoreError):
    """A record or model an audit command needs is missing."""


class NotFound(AuditError):
    pass


class InputGone(AuditError):
    pass


class ModelGone(AuditError):
    pass
