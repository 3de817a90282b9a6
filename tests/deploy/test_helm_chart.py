"""The Helm chart deploy/helm/npusuite, with the real helm: lint, render each values file, validate
every manifest against the Kubernetes schemas (kubernetes-validate, strict: unknown fields fail)
and the ScaledObject against KEDA's CRD schema, and check what the issue asks of each workload."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from npusuite.fraud.service.config import ServiceConfig, Topics

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ("cpu", "cuda", "npu")
ACCELERATORS = {"cpu": None, "cuda": "nvidia.com/gpu", "npu": "huawei.com/Ascend910"}


def strict(schema):
    """KEDA's CRD schema with unknown fields refused, as `kubectl apply` (field validation Strict,
    its default) refuses them: every object that lists properties and says nothing of others
    gets additionalProperties: false."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node \
                    and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@pytest.fixture(scope="module")
def keda_schema(chart):
    return strict(json.loads((chart.schemas / "keda.sh_scaledobject_v1alpha1.json").read_text()))


@pytest.fixture(scope="module")
def kafka_trigger_schema(chart):
    return json.loads((chart.schemas / "keda-kafka-trigger-metadata.json").read_text())


@pytest.mark.parametrize("variant", [None, *VARIANTS])
def test_helm_lint_strict(chart, variant):
    proc = chart.lint(variant)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_validates_against_its_schema(chart, keda_schema, kafka_trigger_schema, variant):
    docs = chart.rendered(variant)
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["Deployment", "PodDisruptionBudget", "ScaledObject", "Service", "StatefulSet"]
    for doc in docs:
        if doc["apiVersion"] == "keda.sh/v1alpha1":
            jsonschema.validate(doc, keda_schema)
            for trigger in doc["spec"]["triggers"]:
                jsonschema.validate(trigger["metadata"], kafka_trigger_schema)
        else:
            kubernetes_validate.validate(doc, chart.kube_version, strict=True)


def test_schema_checks_can_fail(chart, keda_schema, kafka_trigger_schema):
    """The validators refuse what the API server and KEDA would refuse."""
    deployment = copy.deepcopy(chart.rendered("cpu").one("Deployment", "platform"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, chart.kube_version, strict=True)
    scaled = copy.deepcopy(chart.rendered("cpu").one("ScaledObject", "fraud"))
    scaled["spec"]["maxReplicaCount"] = "four"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, keda_schema)
    scaled = copy.deepcopy(chart.rendered("cpu").one("ScaledObject", "fraud"))
    scaled["spec"]["scaleTargetRef"]["nmae"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, keda_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scaled["spec"]["triggers"][0]["metadata"], "lagTreshold": "5"}, kafka_trigger_schema)


def _args(container: dict) -> dict[str, str]:
    """`--flag value` pairs of a container's args (flags without a value map to '')."""
    args, out = container["args"], {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            out[a] = nxt if nxt is not None and not nxt.startswith("--") else ""
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_scorer_scales_on_consumer_lag_of_transactions(chart, parse_cli, variant):
    docs = chart.rendered(variant)
    scaled = docs.one("ScaledObject", "fraud")
    scorer = docs.one("StatefulSet", "fraud")
    _, params = parse_cli(scorer["spec"]["template"]["spec"]["containers"][0]["args"])
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                      "name": scorer["metadata"]["name"]}
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["topic"] == Topics().transactions == params["transactions_topic"] == "transactions"
    assert meta["consumerGroup"] == params["group"]
    assert meta["bootstrapServers"] == params["bootstrap"] == chart.bootstrap
    assert int(meta["lagThreshold"]) > 0
    assert meta["allowIdleConsumers"] == "false"
    # Never more scorers than partitions: the count the scorer creates, and the suite's default.
    partitions = params["partitions"]
    assert partitions == ServiceConfig.model_fields["partitions"].default
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
    assert "replicas" not in scorer["spec"], "with KEDA the HPA owns the replica count"


def test_more_scorers_than_partitions_is_refused(chart):
    proc = chart.template("cpu", "--set", "fraud.autoscaling.maxReplicas=8")
    assert proc.returncode != 0
    assert "must not exceed fraud.partitions" in proc.stderr
    proc = chart.template("cpu", "--set", "fraud.autoscaling.enabled=false", "--set", "fraud.replicas=5")
    assert proc.returncode != 0 and "must not exceed fraud.partitions" in proc.stderr
    proc = chart.template("cpu", "--set", "fraud.autoscaling.enabled=false", "--set", "fraud.replicas=3")
    assert proc.returncode == 0, proc.stderr
    assert "kind: ScaledObject" not in proc.stdout and "replicas: 3" in proc.stdout


def test_kafka_bootstrap_is_required(chart):
    proc = chart.run("template", "npusuite", str(chart.dir), "-f", str(chart.dir / "values-cpu.yaml"))
    assert proc.returncode != 0 and "kafka.bootstrap is required" in proc.stderr


def test_scorer_has_a_disruption_budget_and_zone_spread(chart):
    docs = chart.rendered("cpu")
    scorer = docs.one("StatefulSet", "fraud")
    pdb = docs.one("PodDisruptionBudget", "fraud")
    pod_labels = scorer["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spread = scorer["spec"]["template"]["spec"]["topologySpreadConstraints"]
    zone = [c for c in spread if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zone and zone[0]["maxSkew"] == 1
    assert zone[0]["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    # Stable instance ids: the pod name, so a restarted scorer fences its predecessor.
    container = scorer["spec"]["template"]["spec"]["containers"][0]
    assert _args(container)["--instance-id"] == "$(POD_NAME)"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_platform_device_and_accelerator(chart, variant):
    container = chart.rendered(variant).one("Deployment", "platform")["spec"]["template"]["spec"]["containers"][0]
    assert _args(container)["--device"] == variant
    assert container["image"].endswith(f"-{variant}")
    limits, requests = container["resources"]["limits"], container["resources"].get("requests", {})
    extended = {k for k in {*limits, *requests} if "/" in k}
    expected = ACCELERATORS[variant]
    assert extended == ({expected} if expected else set())
    if expected:
        assert limits[expected] == requests[expected] == 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_container_command_lines_are_real_cli_invocations(chart, parse_cli, variant):
    """Each container's args are parsed by the real `npusuite` CLI parser: every flag exists, every
    value has the right type, every required option is there."""
    commands = set()
    for spec in chart.rendered(variant).pod_specs():
        for container in spec["containers"]:
            assert container["image"].startswith("npusuite:") and "command" not in container  # ENTRYPOINT npusuite
            path, params = parse_cli(container["args"])
            commands.add(" ".join(path))
            if "host" in params:
                # Inside a pod the server must listen on every interface (the suite's default is loopback).
                assert params["host"] == "0.0.0.0"
    assert commands == {"platform serve", "fraud run", "review serve", "edge fleet serve"}


def test_cli_check_can_fail(parse_cli):
    with pytest.raises(Exception, match="No such option"):
        parse_cli(["fraud", "run", "--model", "m", "--readiness-port", "1"])
    with pytest.raises(Exception, match="Missing"):
        parse_cli(["platform", "serve"])


#: The module whose routes serve each component's HTTP probes.
PROBE_SOURCES = {"platform": "platform/serving/oip.py", "review": "apps/review/web/app.py",
                 "fleet": "edge/fleet_server.py", "fraud": "apps/fraud/service/command.py"}
#: /healthz and /readyz come from the shared module: a FastAPI app that calls add_health_routes, or a
#: process that serves a HealthServer (the scorer's metrics.serve), has both.
SHARED_HEALTH = "platform/observability/http.py"


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_use_endpoints_that_exist(chart, variant):
    for doc in chart.rendered(variant):
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        container = doc["spec"]["template"]["spec"]["containers"][0]
        probes = [container[k] for k in ("readinessProbe", "livenessProbe", "startupProbe") if k in container]
        assert "readinessProbe" in container and "livenessProbe" in container, component
        for probe in probes:
            if "httpGet" in probe:
                path = probe["httpGet"]["path"]
                source = (REPO / PROBE_SOURCES[component]).read_text()
                if path in ("/healthz", "/readyz") and re.search(r"add_health_routes\(|ready=", source):
                    shared = (REPO / SHARED_HEALTH).read_text()
                    assert f'path == "{path}"' in shared and f'.get("{path}"' in shared, path
                    continue
                assert re.search(rf'@\w+\.get\("{re.escape(path)}"\)', source), f"{component}: no route {path}"
            else:
                raise AssertionError(f"{component}: a probe that is not an HTTP GET: {probe}")
    platform = chart.rendered(variant).one("Deployment", "platform")["spec"]["template"]["spec"]["containers"][0]
    assert platform["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_are_hardened_and_take_secrets_only_from_secrets(chart, variant):
    docs = chart.rendered(variant)
    assert not docs.of_kind("Secret") and not docs.of_kind("ConfigMap")
    for spec in docs.pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            for env in container.get("env", []):
                if re.search(r"TOKEN|PASSWORD|SECRET|_DB$", env["name"]):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], env
    review = docs.one("Deployment", "review")["spec"]["template"]["spec"]["containers"][0]
    db = next(e for e in review["env"] if e["name"] == "NPUSUITE_REVIEW_DB")
    assert db["valueFrom"]["secretKeyRef"] == {"name": "npusuite-review-db", "key": "url"}


def test_values_files_hold_no_secret_values(chart):
    """Credentials are only ever named (a Secret and its key), never given."""
    def leaves(node, path=()):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from leaves(v, (*path, k))
        else:
            yield path, node

    for path in chart.dir.glob("values*.yaml"):
        for keys, value in leaves(yaml.safe_load(path.read_text())):
            if keys[-1] in ("existingSecret", "key", "imagePullSecrets"):  # names of Secrets
                continue
            assert not re.search(r"password|passwd|token|secret|apikey|credential", keys[-1], re.I), \
                f"{path.name}: {'.'.join(keys)} = {value!r}"
