"""The scoring worker: the hot loop, and the Faust shell around it.

- :mod:`.loop`: consume a batch, score it, produce its records, commit; one thread, top to bottom;
- :mod:`.app`: the scoring worker made from the settings (model, topics, loop, timers), and run;
- :mod:`.shell`: the Faust shell both workers share: no Faust Kafka clients, a loop on a thread;
- :mod:`.drift`: drift on the worker: scored batches feed the monitor, its reports become records;
- :mod:`.reload`: the new version a registry names, served without a restart;
- :mod:`.metrics`: the worker's Prometheus metrics; :mod:`.health`: its HTTP endpoints;
- :mod:`.stats`: the periodic report line;
- :mod:`.watchdog`: a bound on blocking client calls that may never return;
- :mod:`.supervisor`: several workers of one consumer group on one host;
- :mod:`.http_protocol`: HTTP for the metrics and probe endpoints: the limits, a request, an answer, a
  route;
- :mod:`.http_server`: the HTTP server of the metrics and probe endpoints, bounded against hostile
  clients.
"""
