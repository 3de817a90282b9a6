"""Champion/challenger comparisons attached to a version, and the promote gate that checks them.

An app that compares a challenger version with the serving champion (e.g.
``npusuite fraud compare``) attaches its result to the challenger version
(:meth:`~.store.ModelRepository.attach`, kind :data:`COMPARISON`); the
document is the app's own record, and it starts with the fields of
:class:`ComparisonVerdict`, the part the platform reads.

Rule of ``npusuite models promote NAME VERSION --require-comparison``
(:func:`require_passed_comparison`): the promote is refused unless

1. ``NAME@VERSION`` has a comparison document that reads as a
   :class:`ComparisonVerdict` naming ``NAME@VERSION`` as the challenger;
2. it ``passed`` (the app's documented rule, recorded in ``rule``);
3. its ``champion`` is the version the alias points at NOW: a comparison
   against another champion (production moved since) does not count.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ModelRepository

logger = logging.getLogger(__name__)

#: The attachment kind of a comparison document.
COMPARISON = "comparison"


class ComparisonVerdict(BaseModel):
    """The platform's view of a comparison document (extra fields are the app's)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    champion: str = Field(min_length=3, max_length=257, description="name@version the challenger was compared with")
    challenger: str = Field(min_length=3, max_length=257, description="name@version compared (the one attached to)")
    passed: bool
    rule: str = Field(max_length=1000, description="The rule that decided ``passed``, in words.")
    reason: str = Field(max_length=2000, description="Why it passed or failed, with the figures.")
    created_at: datetime


def require_passed_comparison(repo: ModelRepository, name: str, version: str, alias: str) -> ComparisonVerdict:
    """The comparison that allows promoting ``name@version`` to ``alias`` (see the module rules).

    Raises UserError (one line) naming what is missing."""
    ref = f"{name}@{version}"
    document = repo.attachment(name, version, COMPARISON)
    if document is None:
        raise UserError(f"{ref} has no comparison; run a shadow comparison first (e.g. `npusuite fraud compare "
                        f"--model-root ...`) or promote without --require-comparison")
    try:
        verdict = ComparisonVerdict.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{ref}: its comparison document is not valid ({'.'.join(map(str, err['loc']))}: "
                        f"{err['msg']})") from None
    if verdict.challenger != ref:
        raise UserError(f"{ref}: its comparison is of {verdict.challenger}, not of this version")
    if not verdict.passed:
        raise UserError(f"{ref} failed its comparison with {verdict.champion}: {verdict.reason}")
    current = repo.aliases(name).get(alias)
    if current is None:
        raise UserError(f"{name} has no {alias!r} alias, so no champion the comparison could have been against")
    if verdict.champion != f"{name}@{current}":
        raise UserError(f"{ref} was compared with {verdict.champion}, but {name}@{alias} is now {current}; "
                        f"compare again against the current champion")
    logger.info("%s passed its comparison with %s (%s)", ref, verdict.champion, verdict.reason)
    return verdict
