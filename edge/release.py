"""The release side of signed updates: a TUF repository built with ``tuf.api.metadata``.

Layout of a release folder (``npusuite edge release init DIR``)::

    DIR/keys/            0700  private keys, never served, never logged
    DIR/keys/ROLE/KEYID.pem     0600  PKCS#8 PEM ed25519 key; ROLE = root|targets|snapshot|timestamp
    DIR/metadata/        the signing workspace: the latest ROLE.json of each role
    DIR/repository/      what is served over HTTP (``fleet serve --release-dir`` or any static server)
        metadata/N.root.json, root.json, timestamp.json, N.snapshot.json, N.targets.json
        targets/PATH/SHA256.NAME    consistent-snapshot target files

Rules:

* Every role has an expiry (defaults: root 365 d, targets 90 d, snapshot 7 d,
  timestamp 1 d).  ``resign_timestamp`` bumps and re-signs the timestamp so a
  box keeps trusting a repository that did not change (the "freeze" defence
  makes a stale timestamp fail on the box).
* Adding a target bumps targets, snapshot and timestamp versions, signs each
  with its role's key and publishes the new versioned files before the new
  ``timestamp.json`` (so a box never sees a timestamp pointing at a missing
  snapshot).  Every published file is written to a temp file and renamed.
* A target's ``custom`` field carries the bundle's ``version`` (a PEP 440
  version string) and ``kind`` (``model``, ``app`` or ``firmware``); boxes
  refuse versions older than what they run.
* ``rotate_key(role)`` makes a new key, writes a new root version that
  revokes the role's old key(s) and trusts the new one, signed by the old
  *and* new root keys when the root key itself rotates (so boxes can walk the
  chain), then re-signs the role's metadata with the new key.
* Signatures are made and checked by ``securesystemslib`` signers only.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from npusuite.platform.errors import NotFoundError, UserError

logger = logging.getLogger(__name__)

ROLES = ("root", "targets", "snapshot", "timestamp")
DEFAULT_EXPIRY = {"root": timedelta(days=365), "targets": timedelta(days=90),
                  "snapshot": timedelta(days=7), "timestamp": timedelta(days=1)}
KINDS = ("model", "app", "firmware")
#: A target path: relative, ``/``-separated segments of letters, digits, ``.``, ``_``, ``-``; no ``.`` or ``..``
#: segment, so a target name can never address a file outside ``repository/targets/`` or a box's folders.
TARGET_PATH = re.compile(r"(?!.*(?:^|/)\.{1,2}(?:/|$))[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")
MAX_TARGET_PATH = 200


def check_target_path(target_path: str) -> str:
    """``target_path`` if it matches :data:`TARGET_PATH` (at most 200 characters); else raises UserError."""
    if len(target_path) > MAX_TARGET_PATH or not TARGET_PATH.fullmatch(target_path):
        raise UserError(f"bad target path {target_path[:MAX_TARGET_PATH]!r}: use a relative path of letters, digits, "
                        f"'.', '_', '-' like models/line-a.tar.gz")
    return target_path


def check_version(version: str) -> str:
    """``version`` if it is a PEP 440 version (at most 64 characters); else raises UserError."""
    from packaging.version import InvalidVersion, Version

    try:
        if len(version) > 64:
            raise InvalidVersion(version)
        Version(version)
    except InvalidVersion:
        raise UserError(f"version {version[:64]!r} is not a PEP 440 version (e.g. 1.2.0)") from None
    return version
_SER = JSONSerializer(compact=False)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ReleaseRepository:
    """A TUF repository on disk; see the module docstring for the layout and rules."""

    def __init__(self, root_dir: Path) -> None:
        self.dir = Path(root_dir)
        if not (self.dir / "metadata" / "root.json").exists():
            raise NotFoundError(f"{self.dir} is not a release folder (run `npusuite edge release init {self.dir}`)")
        self.md: dict[str, Metadata] = {r: Metadata.from_file(str(self.dir / "metadata" / f"{r}.json"))
                                        for r in ROLES}

    # -- creating ----------------------------------------------------------
    @classmethod
    def init(cls, root_dir: Path, expiry: dict[str, timedelta] | None = None) -> ReleaseRepository:
        """Create keys and version-1 metadata for every role; raises UserError if DIR already holds one."""
        root_dir = Path(root_dir)
        if (root_dir / "metadata" / "root.json").exists():
            raise UserError(f"{root_dir} already holds a release repository")
        expiry = {**DEFAULT_EXPIRY, **(expiry or {})}
        keys_dir = root_dir / "keys"
        keys_dir.mkdir(parents=True, exist_ok=True)
        keys_dir.chmod(0o700)
        now = _now()
        root = Metadata(Root(expires=now + expiry["root"], consistent_snapshot=True))
        signers: dict[str, Signer] = {}
        for role in ROLES:
            signer = CryptoSigner.generate_ed25519()
            _write_key(keys_dir, role, signer)
            root.signed.add_key(signer.public_key, role)
            signers[role] = signer
        md: dict[str, Metadata] = {
            "root": root,
            "targets": Metadata(Targets(expires=now + expiry["targets"])),
            "snapshot": Metadata(Snapshot(expires=now + expiry["snapshot"])),
            "timestamp": Metadata(Timestamp(expires=now + expiry["timestamp"])),
        }
        for role in ROLES:
            md[role].sign(signers[role])
        for role in ROLES:
            _atomic_write(root_dir / "metadata" / f"{role}.json", md[role].to_bytes(_SER))
        repo = cls(root_dir)
        repo._publish(["root", "targets", "snapshot", "timestamp"])
        logger.info("created release repository %s (keys in %s)", root_dir, keys_dir)
        return repo

    # -- publishing --------------------------------------------------------
    def add_target(self, target_path: str, local_file: Path, version: str, kind: str = "model",
                   expires_in: timedelta | None = None, extra: dict[str, Any] | None = None) -> TargetFile:
        """Sign ``local_file`` as ``target_path`` with custom ``{version, kind}`` and publish it.

        Raises UserError for a bad path, kind or version, or a missing file.
        """
        if kind not in KINDS:
            raise UserError(f"kind must be one of {', '.join(KINDS)}")
        check_version(version)
        check_target_path(target_path)
        local_file = Path(local_file)
        if not local_file.is_file():
            raise NotFoundError(f"no such file: {local_file}")
        info = TargetFile.from_file(target_path, str(local_file), ["sha256"])
        info.unrecognized_fields["custom"] = {"version": version, "kind": kind, **(extra or {})}
        dirname, _, basename = target_path.rpartition("/")
        dest = self.dir / "repository" / "targets" / dirname / f"{info.hashes['sha256']}.{basename}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(local_file, tmp)
        os.replace(tmp, dest)
        targets = self.md["targets"].signed
        targets.targets[target_path] = info
        self._bump("targets", expires_in)
        self._cascade()
        logger.info("released %s version %s (%d bytes, sha256 %s)", target_path, version, info.length,
                    info.hashes["sha256"][:12])
        return info

    def resign_timestamp(self, expires_in: timedelta | None = None) -> int:
        """Bump and re-sign the timestamp (same snapshot); returns the new timestamp version."""
        self._bump("timestamp", expires_in)
        self._sign_and_save("timestamp")
        self._publish(["timestamp"])
        logger.info("re-signed timestamp version %d, expires %s", self.md["timestamp"].signed.version,
                    self.md["timestamp"].signed.expires.isoformat())
        return self.md["timestamp"].signed.version

    def rotate_key(self, role: str) -> str:
        """Replace ``role``'s key(s) with a new one; returns the new key id.  Raises UserError for a bad role."""
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        root = self.md["root"]
        old_root_signers = self._signers("root")
        new = CryptoSigner.generate_ed25519()
        old_ids = list(root.signed.roles[role].keyids)
        root.signed.add_key(new.public_key, role)
        for kid in old_ids:
            root.signed.revoke_key(kid, role)
        root.signed.version += 1
        root.signed.expires = _now() + DEFAULT_EXPIRY["root"]
        root.signatures.clear()
        for signer in old_root_signers:  # the old root keys vouch for the new root ...
            root.sign(signer, append=True)
        if role == "root":
            root.sign(new, append=True)  # ... and the new one signs too
        _write_key(self.dir / "keys", role, new)
        _atomic_write(self.dir / "metadata" / "root.json", root.to_bytes(_SER))
        self._publish(["root"])
        for kid in old_ids:
            (self.dir / "keys" / role / f"{kid}.pem").unlink(missing_ok=True)
        if role in ("targets", "snapshot", "timestamp"):
            self._bump(role, None)
            if role == "targets":
                self._cascade()
            elif role == "snapshot":
                self._sign_and_save("snapshot")
                self._bump("timestamp", None)
                self._update_timestamp_meta()
                self._sign_and_save("timestamp")
                self._publish(["snapshot", "timestamp"])
            else:
                self._sign_and_save("timestamp")
                self._publish(["timestamp"])
        logger.info("rotated %s key: %s -> %s (root version %d)", role, ",".join(k[:8] for k in old_ids),
                    new.public_key.keyid[:8], root.signed.version)
        return new.public_key.keyid

    def targets(self) -> dict[str, TargetFile]:
        return dict(self.md["targets"].signed.targets)

    def status(self) -> dict[str, Any]:
        return {role: {"version": self.md[role].signed.version,
                       "expires": self.md[role].signed.expires.isoformat(),
                       "keyids": list(self.md["root"].signed.roles[role].keyids)} for role in ROLES} | {
            "targets_list": {p: t.custom for p, t in self.targets().items()}}

    @property
    def trusted_root_path(self) -> Path:
        """The root to provision boxes with (their first trusted root)."""
        return self.dir / "repository" / "metadata" / "1.root.json"

    # -- internals ---------------------------------------------------------
    def _bump(self, role: str, expires_in: timedelta | None) -> None:
        signed = self.md[role].signed
        signed.version += 1
        signed.expires = _now() + (DEFAULT_EXPIRY[role] if expires_in is None else expires_in)

    def _cascade(self) -> None:
        """targets changed: sign it, point snapshot at it, timestamp at snapshot, publish in that order."""
        self._sign_and_save("targets")
        self.md["snapshot"].signed.meta["targets.json"] = MetaFile(version=self.md["targets"].signed.version)
        self._bump("snapshot", None)
        self._sign_and_save("snapshot")
        self._bump("timestamp", None)
        self._update_timestamp_meta()
        self._sign_and_save("timestamp")
        self._publish(["targets", "snapshot", "timestamp"])

    def _update_timestamp_meta(self) -> None:
        self.md["timestamp"].signed.snapshot_meta = MetaFile(version=self.md["snapshot"].signed.version)

    def _signers(self, role: str) -> list[Signer]:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        root = self.md["root"].signed
        out: list[Signer] = []
        for kid in root.roles[role].keyids:
            pem = self.dir / "keys" / role / f"{kid}.pem"
            if not pem.exists():
                raise NotFoundError(f"missing private key for {role}: {pem}")
            out.append(CryptoSigner(load_pem_private_key(pem.read_bytes(), None), root.keys[kid]))
        return out

    def _sign_and_save(self, role: str) -> None:
        md = self.md[role]
        md.signatures.clear()
        for signer in self._signers(role):
            md.sign(signer, append=True)
        _atomic_write(self.dir / "metadata" / f"{role}.json", md.to_bytes(_SER))

    def _publish(self, roles: list[str]) -> None:
        out = self.dir / "repository" / "metadata"
        for role in roles:  # callers pass them in dependency order; timestamp always last
            md = self.md[role]
            data = md.to_bytes(_SER)
            if role == "timestamp":
                _atomic_write(out / "timestamp.json", data)
            else:
                _atomic_write(out / f"{md.signed.version}.{role}.json", data)
                if role == "root":
                    _atomic_write(out / "root.json", data)


def _write_key(keys_dir: Path, role: str, signer: CryptoSigner) -> None:
    role_dir = keys_dir / role
    role_dir.mkdir(parents=True, exist_ok=True)
    role_dir.chmod(0o700)
    path = role_dir / f"{signer.public_key.keyid}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signer.private_bytes)
