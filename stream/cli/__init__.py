"""The ``streamscore`` command line.

- :mod:`.main`: the ``streamscore`` app, every command registered on it (and ``version``, ``schemas``);
- :mod:`.common`: what every command module shares: ``fail`` and ``settings``;
- :mod:`.workers`: ``streamscore worker`` (alone or supervised) and ``streamscore outcomes``;
- :mod:`.traffic`: ``streamscore produce`` and ``streamscore tail``;
- :mod:`.lag`: ``streamscore lag``, a table or a Prometheus exporter;
- :mod:`.demo`: ``streamscore broker`` and ``streamscore run``, a broker and the demo on this machine;
- :mod:`.model`: ``streamscore model``: train, register, list, promote and compare models;
- :mod:`.audit`: ``streamscore explain``, ``verify`` and ``replay``.
"""
