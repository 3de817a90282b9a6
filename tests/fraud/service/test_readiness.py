"""The scorer's /readyz checks without a cluster: an unreachable broker, no partitions, a model engine."""

from npusuite.fraud.service.config import ServiceConfig
from npusuite.fraud.service.runner import FraudService


class _Engine:
    ready = True


class _Scorer:
    fast = _Engine()


def test_unreachable_broker_and_no_partitions_are_not_ready():
    config = ServiceConfig(bootstrap="127.0.0.1:1", instance_id="t")  # nothing listens on port 1
    service = FraudService(config, _Scorer())
    checks = service.readiness()
    assert checks == {"broker": False, "model": True, "partitions": False}
    _Scorer.fast.ready = False
    assert service.readiness()["model"] is False  # cached broker answer, the model re-read


def test_a_client_that_cannot_reach_its_broker_counts_errors():
    """librdkafka's error callback feeds npusuite_fraud_kafka_client_errors_total (what ops sees while a broker is
    down): a real confluent-kafka consumer configured as the scorer's, pointed at a port nothing listens on."""
    import time

    from confluent_kafka import Consumer

    config = ServiceConfig(bootstrap="127.0.0.1:1", instance_id="t")
    service = FraudService(config, _Scorer())
    consumer = Consumer({**service._client_config("consumer"), "group.id": "t", "reconnect.backoff.max.ms": 100})
    try:
        consumer.subscribe(["transactions"])
        deadline = time.monotonic() + 20
        errors = service.metrics.registry.get_sample_value
        while time.monotonic() < deadline and not (errors("npusuite_fraud_kafka_client_errors_total",
                                                          {"error": "_TRANSPORT"}) or
                                                   errors("npusuite_fraud_kafka_client_errors_total",
                                                          {"error": "_ALL_BROKERS_DOWN"})):
            consumer.poll(0.2)
    finally:
        consumer.close()
    counted = {s.labels["error"]: s.value for m in service.metrics.registry.collect() for s in m.samples
               if s.name == "npusuite_fraud_kafka_client_errors_total"}
    assert counted.get("_TRANSPORT", 0) + counted.get("_ALL_BROKERS_DOWN", 0) >= 1, counted
