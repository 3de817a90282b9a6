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
