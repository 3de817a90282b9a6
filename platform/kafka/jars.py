"""Resolve and cache the Apache Kafka broker's jars from Maven Central.

The pom in ``resources/pom.xml`` names the broker (``kafka_2.13``) and a log4j2
binding; ``mvn dependency:copy-dependencies`` copies the whole runtime
classpath into ``CACHE/kafka/<pom-hash>/libs``.  The folder is written under a
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
    pom = resource("pom.xml")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    libs = cache_root / "kafka" / f"{kafka_version()}-{digest}" / "libs"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = require_tool("mvn", "to fetch the Kafka broker's jars from Maven Central")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    logger.info("fetching Apache Kafka %s jars from Maven Central into %s", kafka_version(), libs)
    cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
           f"-DoutputDirectory={partial}", "-DincludeScope=runtime"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"Maven could not fetch the Kafka jars: {tail[0]}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    return libs
