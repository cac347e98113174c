"""The model lifecycle: where models come from, and how a new one takes over.

- :mod:`.uris`: ``STREAMSCORE_MODEL_URI`` and ``STREAMSCORE_CHALLENGER_URI`` parsed into a
  :class:`~.uris.ModelUri` (a folder registry, or MLflow's ``models:/NAME@ALIAS``);
- :mod:`.sources`: a :class:`~.sources.Source` per URI (which version it names now, load it);
  :mod:`.folder` and :mod:`.mlflow_registry` are the two registries (register, list, promote);
- :mod:`.changes`: the ``model-changes`` topic (every start and switch, with the first offset
  each input partition had scored by the new model);
- :mod:`.comparison`: the paired comparison of two models on outcomes.

Champion and challenger on the hot path: :mod:`stream.scoring.challenger`; the commands:
:mod:`stream.cli.model`.
"""
