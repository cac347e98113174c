"""The outcome worker: joins true outcomes with the predictions they judge.

- :mod:`.app`: the worker's Faust shell: topics, the store, the loop on its own thread, metrics;
- :mod:`.loop`: consume a batch, join it, produce, commit; one thread, top to bottom;
- :mod:`.decode`: provenance and outcome records to join halves, a batch at a time;
- :mod:`.join`: the join over the pending entries (no Kafka); :mod:`.entry`: one entry;
- :mod:`.delivery`: the loop's producer: records sent, delivery followed, checkpoints reached;
- :mod:`.store`: the pending entries on disk; :mod:`.restore`: a store brought up to date;
- :mod:`.changelog`: the store's signed changelog records and checkpoints;
- :mod:`.layout`: the store's RocksDB keys and options;
- :mod:`.kafka`: the worker's topics and clients; :mod:`.report`: its series and reports;
- :mod:`.pairing`: a challenger's side: each event's two answers paired with its outcome;
- :mod:`.estimates`: each estimated drift window (:mod:`.windows` reads them) checked on its
  outcomes, :mod:`.checks` its figures.
"""
