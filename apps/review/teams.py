"""Teams, and each user's role in them.

Rules:

- Two teams: ``fraud`` works fraud cases, ``qc`` works inspection cases; a
  case belongs to the team of its kind (:data:`TEAM_OF_KIND`), stored on the
  case so every queue is one team's.
- A user belongs to one or both teams, with a role per team: ``analyst`` or
  ``supervisor`` (:data:`TEAM_ROLES`).  An ``admin`` (a global role) acts as a
  supervisor in every team.
- A user sees, takes and decides only their teams' cases; "next case" never
  crosses into a team the user is not in.  Supervisor actions (taking
  escalated cases, releasing others' cases, reassigning, bulk decisions, the
  team's workload) need the supervisor role in the case's team.
"""

from __future__ import annotations

from collections.abc import Mapping

TEAMS = ("fraud", "qc")
TEAM_ROLES = ("analyst", "supervisor")
TEAM_OF_KIND = {"fraud": "fraud", "inspection": "qc"}
KIND_OF_TEAM = {team: kind for kind, team in TEAM_OF_KIND.items()}
TEAM_LABELS = {"fraud": "Fraud", "qc": "QC"}


def team_role_for(global_role: str) -> str:
    """The team role a global role gives (admin and supervisor: supervisor)."""
    return "analyst" if global_role == "analyst" else "supervisor"


def parse_team(value: str, default_role: str) -> tuple[str, str]:
    """``fraud`` or ``fraud:supervisor`` -> (team, role); raises ValueError naming the choices."""
    team, _, role = value.partition(":")
    role = role or team_role_for(default_role)
    if team not in TEAMS:
        raise ValueError(f"unknown team {team!r}: use one of {', '.join(TEAMS)}")
    if role not in TEAM_ROLES:
        raise ValueError(f"unknown team role {role!r}: use one of {', '.join(TEAM_ROLES)}")
    return team, role


def role_in(teams: Mapping[str, str], global_role: str, team: str) -> str | None:
    """The user's role in TEAM (None: not a member)."""
    if global_role == "admin":
        return "supervisor"
    return teams.get(team)


def supervises(teams: Mapping[str, str], global_role: str, team: str) -> bool:
    return role_in(teams, global_role, team) == "supervisor"


def teams_of(teams: Mapping[str, str], global_role: str) -> list[str]:
    """The teams whose cases the user works, in :data:`TEAMS` order."""
    return [t for t in TEAMS if role_in(teams, global_role, t) is not None]
