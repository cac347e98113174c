"""Exact per-feature contributions to a score's margin, read from the ONNX graph (reason codes).

- :func:`contributions_for`: a loaded model's :class:`Contributions` (path-dependent TreeSHAP of a
  tree ensemble, or a linear model's coefficient times the column's distance from its reference
  mean), from the graph and the card's ``attribution``;
- :func:`top_reasons`: each row's K largest contributions in magnitude, by feature name;
- :mod:`.graph`, :mod:`.paths`, :mod:`.trees`, :mod:`.linear`: reading the graph, and the two ways.
"""

from stream.scoring.contributions.core import Contributions, build, contributions_for, top_reasons

__all__ = ["Contributions", "build", "contributions_for", "top_reasons"]
