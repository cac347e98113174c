"""Tools around the workers, for tests and the demo: a broker, a registry, traffic, a model.

- :mod:`.broker`: a real single-node Apache Kafka broker on loopback (its jars resolved from
  Maven Central by ``pom.xml``, its logging set by ``log4j2.properties``);
- :mod:`.maven`: Kafka's jars resolved from Maven Central into a per-user cache, and ``BrokerError``;
- :mod:`.broker_config`: the broker's ``server.properties`` (plain, SASL_SSL, ACLs), its own client settings;
- :mod:`.apicurio`: Apicurio Registry on loopback, a real registry with the Confluent API;
- :mod:`.demo`: ``streamscore run``, the whole loop on one machine;
- :mod:`.produce`: ``streamscore produce``; :mod:`.tail`: ``streamscore tail``;
- :mod:`.datagen`: loan applications, the demo domain of training and ``produce``;
- :mod:`.train`: ``streamscore model train``: a model trained on it, exported and registered.
"""
