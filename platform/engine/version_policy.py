"""Which versions of a model are served besides the one behind ``production``.

Rules:
- A policy is ``latest:N`` (the N highest versions in the repository's
  version order) or an explicit list ``1,2`` of versions.  Without a policy a
  model serves only its ``production`` version (hot-swapping as the alias
  moves).
- The policy is evaluated when the model is loaded (server start, or the
  model gaining a production alias); versions added later are not picked up
  until the next start.  A listed version that does not exist is logged and
  skipped, never fatal for the other versions.
- The command-line form is ``NAME=latest:N`` or ``NAME=V1,V2``
  (:func:`parse_policy`); a malformed one is a ``UserError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from npusuite.platform.errors import UserError
from npusuite.platform.repository.names import is_valid_name


@dataclass(frozen=True)
class VersionPolicy:
    latest: int | None = None
    versions: tuple[str, ...] = ()

    def select(self, available: list[str]) -> list[str]:
        """The versions to serve, from ``available`` (ascending, as the repository lists them)."""
        if self.latest is not None:
            return list(available[-self.latest:])
        return [v for v in self.versions if v in available]


def parse_policy(spec: str) -> tuple[str, VersionPolicy]:
    """``"fraud-mlp=latest:2"`` or ``"fraud-mlp=1,2"`` -> (name, policy)."""
    name, sep, rule = spec.partition("=")
    if not sep or not is_valid_name(name):
        raise UserError(f"--version-policy {spec!r}: expected NAME=latest:N or NAME=V1,V2")
    if rule.startswith("latest:"):
        count = rule.removeprefix("latest:")
        if not count.isdigit() or int(count) < 1:
            raise UserError(f"--version-policy {spec!r}: latest:N needs N >= 1")
        return name, VersionPolicy(latest=int(count))
    versions = tuple(v.strip() for v in rule.split(","))
    if not rule or not all(is_valid_name(v) for v in versions):
        raise UserError(f"--version-policy {spec!r}: expected NAME=latest:N or NAME=V1,V2")
    return name, VersionPolicy(versions=versions)
