import re
from pathlib import Path

from npusuite.platform.observability import names as N

DOC = Path(__file__).parents[3] / "docs" / "observability.md"


def _constants() -> dict[str, str]:
    return {k: v for k, v in vars(N).items() if k.isupper() and isinstance(v, str) and v.startswith("npusuite_")}


def test_every_name_follows_the_scheme_and_is_unique():
    names = _constants()
    assert len(set(names.values())) == len(names)
    components = {"process", "host", "device", "platform", "llm", "fraud", "inspection", "edge", "fleet", "review"}
    for const, name in names.items():
        assert re.fullmatch(r"npusuite_[a-z0-9_]+", name), const
        assert name.split("_")[1] in components, name


def test_every_name_is_documented():
    doc = DOC.read_text()
    missing = [n for n in _constants().values() if f"`{n}`" not in doc and f"`{n}" not in doc]
    assert not missing, f"not in docs/observability.md: {missing}"


def test_no_old_names_remain_in_the_tables():
    doc = "\n".join(line for line in DOC.read_text().splitlines() if line.startswith("|"))
    for old in ("`fraud_transactions", "`npusuite_requests_total", "`npusuite_queue_length`"):
        assert old not in doc
