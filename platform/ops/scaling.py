"""Apply scaling advice through Kubernetes, never through a scaler of our own.

Two outputs: a values override for the Helm chart deploy/helm/npusuite (``helm upgrade -f``):
``fraud.replicas`` (KEDA off) and ``fraud.autoscaling.minReplicas``/``maxReplicas`` (KEDA on:
KEDA's ScaledObject reads them, so the floor rises before the load does); and the equivalent
``kubectl scale`` command for the scorer's StatefulSet (``<release>-fraud``, the chart's name).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from npusuite.platform.ops.capacity import ScalingAdvice


def values_override(advice: ScalingAdvice, *, current_max_replicas: int | None = None) -> dict:
    n = advice.needed_replicas
    auto = {"minReplicas": n}
    if current_max_replicas is not None:
        auto["maxReplicas"] = max(n, current_max_replicas)
    return {"fraud": {"replicas": n, "autoscaling": auto}}


def write_values(advice: ScalingAdvice, path: Path, *, current_max_replicas: int | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# npusuite ops capacity: {advice.message()}\n"
              f"# helm upgrade <release> deploy/helm/npusuite -f <values> -f {path.name}\n")
    path.write_text(header + yaml.safe_dump(values_override(advice, current_max_replicas=current_max_replicas),
                                            sort_keys=False))
    return path


def kubectl_command(advice: ScalingAdvice, *, release: str = "npusuite", namespace: str | None = None) -> str:
    ns = f" -n {namespace}" if namespace else ""
    return f"kubectl{ns} scale statefulset/{release}-fraud --replicas={advice.needed_replicas}"
