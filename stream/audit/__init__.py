"""Audit and replay: explain a prediction, verify a sample bit-exactly, re-score a range with a pinned model.

- :mod:`.lookup`: finds records (provenance by ``event_id``, inputs by offset, dead letters);
- :mod:`.rescore`: runs an input through the hot path's own pieces again and compares the result
  with its provenance (shared by :mod:`.explain` and :mod:`.verify`);
- :mod:`.replay`: drives the worker's own loop over a bounded range;
- :mod:`.formats`: reads the records in the format the worker wrote them;
- :mod:`.errors`: the one-line answers to the user.

The commands are :mod:`stream.cli.audit`.
"""
