"""Resolve and cache the Apache Kafka broker's (and MirrorMaker 2's) jars from Maven Central.

The pom in ``resources/pom.xml`` names the broker (``kafka_2.13``) and a log4j2
binding; ``resources/mirror-pom.xml`` names MirrorMaker 2 (``connect-mirror``),
resolved at the broker pom's Kafka version (passed to Maven as
``-Dkafka.version``) into a folder of its own (:func:`resolve_mirror`).
``mvn dependency:copy-dependencies`` copies each pom's whole runtime classpath
into ``CACHE/kafka/<version>-<pom-hash>/libs``.  The folder is written under a
temporary name and renamed when complete, so an interrupted download is never
mistaken for a cache hit.  Editing the pom (say, a new Kafka version) changes
the hash and so the cache folder.

Raises :class:`UserError` when ``mvn`` or ``java`` is missing or Maven fails.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)


def resource(name: str) -> Path:
    return Path(str(resources.files("npusuite.platform.kafka.resources") / name))


def kafka_version() -> str:
    text = resource("pom.xml").read_text()
    return text.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0].strip()


def require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"`{name}` was not found on PATH; it is needed {why} (install it, e.g. apt-get install {name})")
    return path


def resolve(cache_root: Path) -> Path:
    """Return a folder holding every jar the broker needs, downloading it once."""
    return _resolve(cache_root, "pom.xml", "kafka_2.13-*.jar", "broker")


def resolve_mirror(cache_root: Path) -> Path:
    """Return a folder holding every jar MirrorMaker 2 needs (same Kafka version), downloading it once."""
    return _resolve(cache_root, "mirror-pom.xml", "connect-mirror-*.jar", "MirrorMaker 2")


def _resolve(cache_root: Path, pom_name: str, marker: str, what: str) -> Path:
    pom = resource(pom_name)
    # The folder name carries the Kafka version (the mirror pom is resolved at it) and the pom's own hash.
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    libs = cache_root / "kafka" / f"{kafka_version()}-{digest}" / "libs"
    if libs.is_dir() and any(libs.glob(marker)):
        return libs
    mvn = require_tool("mvn", f"to fetch the Kafka {what} jars from Maven Central")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    logger.info("fetching Apache Kafka %s %s jars from Maven Central into %s", kafka_version(), what, libs)
    cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-Dkafka.version={kafka_version()}",
           f"-DoutputDirectory={partial}", "-DincludeScope=runtime"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"Maven could not fetch the Kafka jars: {tail[0]}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    return libs
