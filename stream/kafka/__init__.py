"""Kafka plumbing that the workers and the tools share: connections, clients, topics, offsets.

- :mod:`.config`: how every client connects (addresses, TLS, SASL), from the settings;
- :mod:`.clients`: the batch loops' consumer and producer, and how they end the process;
- :mod:`.topics`: the topics the project needs, made with explicit partition counts;
- :mod:`.permissions`: what a worker's principal must be allowed to do, checked before it starts;
- :mod:`.partitioning`: where a key belongs, as Kafka's Java client computes it;
- :mod:`.lag`: consumer lag of any group; :mod:`.lag_status`: what is wrong with a group;
- :mod:`.state_topic`: worker state in one compacted topic, one record per input partition.
"""
