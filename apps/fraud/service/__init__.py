"""The live fraud scorer: ``npusuite fraud run``.

Modules, from the outside in:

* :mod:`.command`: the ``run`` CLI command (flags -> :class:`.config.ServiceConfig`);
* :mod:`.runner`: the Kafka consume -> transform -> produce loop with Kafka transactions;
* :mod:`.account_store`: per-partition account state in a compacted changelog topic;
* :mod:`.processor`: the pure per-batch core (validation, dead letters, waves, outputs);
* :mod:`.messages`: wire formats of scores, alerts and dead letters;
* :mod:`.metrics`: Prometheus metrics;
* :mod:`.topics`: topic creation.

The design and its guarantees are described in ``docs/fraud-service.md``.
"""
