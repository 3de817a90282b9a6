"""Signed A/B updates on the box: TUF verification, resumable download, switch, health check, commit or roll back.

The order is fixed, and each step only starts when the one before succeeded:

1. **refresh** trusted metadata with ``tuf.ngclient.Updater`` (root chain,
   timestamp, snapshot, targets; every signature, version and expiry is
   checked there, by the TUF reference implementation);
2. **look up** the target; refuse it if its ``custom.version`` is not newer
   than the committed one (a signed but older bundle is a rollback);
3. **download** it into the inactive slot's ``download/`` folder, resuming a
   partial file with an HTTP ``Range`` request, never reading more than the
   signed length;
4. **verify** the file against the signed length and sha256
   (``Updater.find_cached_target``); a mismatch deletes the partial file;
5. **install** (unpack) into the inactive slot and **switch** atomically;
6. **health check** the new slot; **commit** on success, else **roll back**.
   With an :class:`~npusuite.edge.agent.Inspectors` (what the agent runs),
   steps 6 and the model swap are one: ``inspectors.install`` builds the
   bundle's model as a candidate beside the serving one (for the inspection
   pipeline: the platform engine's load, adapter build + warm-up), runs the
   health check on that candidate and switches to it only if it passes; the
   slot is then committed.  A failed check leaves the serving model as it
   was and rolls the slot back.  (Without one, ``health.run`` loads its own
   inspector and ``on_commit`` hands it over: the standalone form.)

Any refusal in steps 1-4 leaves the running slot untouched; it is reported as
an :class:`UpdateRefused` with a ``kind`` (``expired``, ``untrusted``,
``metadata_rollback``, ``tampered``, ``rollback``, ``unknown_target``,
``network``, ``repository``, ``bundle``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from packaging.version import InvalidVersion, Version
from tuf.api import exceptions as tuf_exc
from tuf.ngclient import Updater

from npusuite.edge.agent import Inspectors
from npusuite.edge.bundles import read_bundle_meta
from npusuite.edge.health import HealthCheck, HealthReport, Inspector
from npusuite.edge.slots import BundleError, SlotManager

logger = logging.getLogger(__name__)


class UpdateRefused(Exception):
    """The update was not installed; the running slot is untouched."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass
class UpdateStatus:
    """What the status endpoint shows about updates."""

    state: str = "idle"  # idle|refreshing|downloading|verifying|installing|health_check|committed|rolled_back|refused
    target: str | None = None
    version: str | None = None
    campaign_id: str | None = None
    detail: str | None = None
    downloaded_bytes: int = 0
    resumed_from_bytes: int = 0
    health: dict[str, Any] | None = None
    finished_at_s: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class UpdateSource:
    """Where the TUF repository is served (``.../metadata/`` and ``.../targets/``)."""

    metadata_url: str
    targets_url: str

    @classmethod
    def from_base(cls, base_url: str) -> UpdateSource:
        base = base_url.rstrip("/")
        return cls(f"{base}/metadata/", f"{base}/targets/")


def _parse_version(v: Any, target: str) -> Version:
    try:
        return Version(str(v))
    except InvalidVersion as exc:
        raise UpdateRefused("repository", f"{target} has no valid custom.version ({v!r})") from exc


def bundle_label(bundle_dir: Path) -> str | None:
    """``name@version`` of a signed bundle, which results report (a bundle's model folder alone says ``@local``)."""
    try:
        meta = read_bundle_meta(bundle_dir)
        return f"{meta['name']}@{meta['version']}"
    except (OSError, ValueError, KeyError):
        return None


def check_candidate(health: HealthCheck, inspector: Inspector, bundle_dir: Path) -> HealthReport:
    """The health check's rules on an inspector already built (its load step is the build that made it)."""
    built = HealthCheck(lambda _model_dir: inspector, health.frames, health.config, health.expected_ng)
    return built.run(bundle_dir)[0]


class UpdateManager:
    """Applies one update at a time; ``status`` is safe to read from other threads."""

    def __init__(self, slots: SlotManager, source: UpdateSource, health: HealthCheck,
                 on_commit: Callable[[Inspector, Path], None] | None = None,
                 http: httpx.Client | None = None, chunk_bytes: int = 64 * 1024,
                 inspectors: Inspectors | None = None) -> None:
        self.slots = slots
        self.source = source
        self.health = health
        self.on_commit = on_commit
        self.inspectors = inspectors
        self.status = UpdateStatus()
        self.metadata_dir = slots.dir / "tuf" / "metadata"
        self._http = http or httpx.Client(timeout=30.0)
        self._chunk = chunk_bytes
        self._lock = threading.Lock()

    # -- provisioning ------------------------------------------------------
    def trust_root(self, root_json: Path) -> None:
        """Install the first trusted root (factory provisioning); later roots come only through TUF."""
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        dest = self.metadata_dir / "root.json"
        if not dest.exists():
            dest.write_bytes(Path(root_json).read_bytes())
            logger.info("provisioned trusted TUF root from %s", root_json)

    # -- the update --------------------------------------------------------
    def apply(self, target: str, campaign_id: str | None = None) -> UpdateStatus:
        """Run steps 1-6 for ``target``; returns the final status (state committed/rolled_back/refused)."""
        with self._lock:
            self.status = UpdateStatus(state="refreshing", target=target, campaign_id=campaign_id,
                                       history=self.status.history[-20:])
            try:
                self._apply(target)
            except UpdateRefused as exc:
                self._finish("refused", str(exc))
                logger.warning("update %s refused: %s (still running slot %s)", target, exc, self.slots.state.active)
            return self.status

    def _apply(self, target: str) -> None:
        updater = self._updater()
        try:
            updater.refresh()
            info = updater.get_targetinfo(target)
        except tuf_exc.ExpiredMetadataError as exc:
            raise UpdateRefused("expired", str(exc)) from exc
        except tuf_exc.UnsignedMetadataError as exc:
            raise UpdateRefused("untrusted", str(exc)) from exc
        except tuf_exc.BadVersionNumberError as exc:
            raise UpdateRefused("metadata_rollback", str(exc)) from exc
        except tuf_exc.LengthOrHashMismatchError as exc:
            raise UpdateRefused("tampered", f"metadata: {exc}") from exc
        except tuf_exc.RepositoryError as exc:
            raise UpdateRefused("repository", f"{type(exc).__name__}: {exc}") from exc
        except (tuf_exc.DownloadError, OSError) as exc:
            raise UpdateRefused("network", f"{type(exc).__name__}: {exc}") from exc
        if info is None:
            raise UpdateRefused("unknown_target", f"{target} is not in the signed targets")
        custom = info.custom if isinstance(info.custom, dict) else {}
        new_version = _parse_version(custom.get("version"), target)
        self.status.version = str(new_version)
        running = self.slots.committed()
        if running is not None and running.version is not None:
            current = Version(running.version)
            if new_version < current:
                raise UpdateRefused("rollback", f"{target} {new_version} is older than the running {current}")
            if new_version == current and running.target == target:
                raise UpdateRefused("already_installed", f"{target} {new_version} is already running")

        slot = self.slots.inactive
        sha = info.hashes["sha256"]
        part = self.slots.download_dir(slot) / f"{sha}.part"
        for stale in self.slots.download_dir(slot).glob("*.part"):
            if stale != part:
                stale.unlink()
        self.status.state = "downloading"
        self._download(self._target_url(info.path, sha), part, info.length)
        self.status.state = "verifying"
        if updater.find_cached_target(info, str(part)) is None:
            part.unlink(missing_ok=True)
            raise UpdateRefused("tampered", f"{target}: bytes do not match the signed length/sha256")

        self.status.state = "installing"
        try:
            bundle_dir = self.slots.install(part, target, str(new_version))
        except BundleError as exc:
            raise UpdateRefused("bundle", str(exc)) from exc
        finally:
            part.unlink(missing_ok=True)
        self.slots.switch()
        self.status.state = "health_check"
        inspector = None
        if self.inspectors is not None:  # build, check and switch in one step (see the module rules)
            report = self.inspectors.install(bundle_dir / "model", bundle_label(bundle_dir),
                                             lambda candidate: check_candidate(self.health, candidate, bundle_dir))
        else:
            report, inspector = self.health.run(bundle_dir)
        self.status.health = report.to_json()
        if report.ok and (inspector is not None or self.inspectors is not None):
            self.slots.commit()
            if self.on_commit is not None and inspector is not None:
                self.on_commit(inspector, bundle_dir)
            self._finish("committed", f"slot {self.slots.state.active} running {target} {new_version}")
        else:
            self.slots.rollback(report.reason)
            self._finish("rolled_back", f"health check failed: {report.reason}")

    def _finish(self, state: str, detail: str) -> None:
        self.status.state = state
        self.status.detail = detail
        self.status.finished_at_s = time.time()
        self.status.history.append({"target": self.status.target, "version": self.status.version,
                                    "state": state, "detail": detail, "at_s": self.status.finished_at_s})

    # -- I/O ---------------------------------------------------------------
    def _updater(self) -> Updater:
        if not (self.metadata_dir / "root.json").exists():
            raise UpdateRefused("untrusted", f"no trusted root in {self.metadata_dir}; provision one first")
        return Updater(metadata_dir=str(self.metadata_dir), metadata_base_url=self.source.metadata_url,
                       target_base_url=self.source.targets_url, bootstrap=None)

    def _target_url(self, path: str, sha: str) -> str:
        dirname, sep, basename = path.rpartition("/")  # consistent snapshot: hash-prefixed file name
        return f"{self.source.targets_url}{dirname}{sep}{sha}.{basename}"

    def _download(self, url: str, part: Path, length: int) -> None:
        """Fetch ``url`` into ``part``, resuming from its current size; never past ``length`` bytes."""
        have = part.stat().st_size if part.exists() else 0
        if have > length:
            part.unlink()
            have = 0
        self.status.resumed_from_bytes = have
        if have == length:
            return
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self._http.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 200 and have:
                    have = 0  # the server ignored the range: start over
                    self.status.resumed_from_bytes = 0
                elif resp.status_code not in (200, 206):
                    raise UpdateRefused("network", f"GET {url}: HTTP {resp.status_code}")
                if have:
                    logger.info("resuming download of %s at byte %d of %d", url, have, length)
                with part.open("ab" if have else "wb") as f:
                    for chunk in resp.iter_bytes(self._chunk):
                        if have + len(chunk) > length:
                            raise UpdateRefused("tampered", f"{url} is longer than its signed length {length}")
                        f.write(chunk)
                        have += len(chunk)
                        self.status.downloaded_bytes += len(chunk)
        except httpx.HTTPError as exc:
            raise UpdateRefused("network", f"download interrupted at byte {have}: {exc}") from exc
