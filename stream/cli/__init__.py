"""The ``streamscore`` command line.

- :mod:`.main`: the ``streamscore`` app and its commands (worker, outcomes, broker, produce, ...);
- :mod:`.common`: what every command module shares: ``fail`` and ``settings``;
- :mod:`.model`: ``streamscore model``: train, register, list, promote and compare models;
- :mod:`.audit`: ``streamscore explain``, ``verify`` and ``replay``.
"""
