"""Audit and replay: explain a prediction, verify a sample bit-exactly, re-score a range with a pinned model.

``lookup`` finds records (provenance by ``event_id``, inputs by offset, dead letters); ``rescore`` runs
an input through the hot path's own pieces again and compares the result with its provenance
(shared by ``explain`` and ``verify``); ``replay`` drives :class:`~stream.loop.ScoringLoop` over a
bounded range; ``headers`` holds the trace context and CloudEvents headers the records carry;
``commands`` registers the command line.
"""
