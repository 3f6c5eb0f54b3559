"""The model registry: known models, atomic sha256-verified installs, verification and lookup.

Layout: a model is installed at ``model_dir / spec.relpath``; a mirror directory (an offline copy, e.g.
``../shared/models``) uses the same relative paths.

Installing streams the bytes (from the pinned upstream URL, or from ``mirror / relpath``) into a temporary file in
the destination directory while hashing them, checks size and sha256, and only then renames the temporary file
over the destination (``os.replace``: atomic on POSIX). A mismatch removes the temporary file, leaves whatever was
installed before untouched, and raises :class:`ModelIntegrityError` naming the expected and actual sha256.

Not installed is not a failure for :func:`verify_installed` (what ``store-agent doctor`` calls): a box only needs
the models its config uses, so missing models are listed as ``"not installed"`` with ``ok=True`` unless they are
named in ``required``. An installed file that does not match its sha256 (or size) is always a failure.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> model_path("yolox-nano", d)
    Traceback (most recent call last):
    ...
    models.spec.ModelNotInstalled: model 'yolox-nano' is not installed in ...: run `store-agent models pull yolox-nano`
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from models.catalog import CATALOG
from models.spec import ModelError, ModelIntegrityError, ModelNotInstalled, ModelSourceError, ModelSpec, UnknownModel

__all__ = ["MIRROR_ENV", "REGISTRY", "ModelError", "ModelIntegrityError", "ModelNotInstalled", "ModelSourceError",
           "ModelSpec", "UnknownModel", "VerifyResult", "get_spec", "install", "install_state", "model_path",
           "pull_hint", "resolve_mirror", "sha256_file", "verify", "verify_installed"]

log = logging.getLogger(__name__)

#: Environment variable naming a mirror directory used by :func:`install` when no mirror is passed.
MIRROR_ENV = "STORE_AGENT_MODEL_MIRROR"
#: Every known model by name.
REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in CATALOG}

CHUNK = 1 << 16
DOWNLOAD_TIMEOUT_S = 60.0
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one model file. ``installed`` is False when the file is absent."""

    name: str
    ok: bool
    detail: str
    installed: bool = True


def pull_hint(name: str) -> str:
    """The command that installs ``name``."""
    return f"store-agent models pull {name}"


def get_spec(name: str | ModelSpec) -> ModelSpec:
    """The registry entry of ``name`` (a :class:`ModelSpec` is returned as is); :class:`UnknownModel` otherwise."""
    if isinstance(name, ModelSpec):
        return name
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownModel(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}") from None


def resolve_mirror(mirror: Path | str | None) -> Path | None:
    """``mirror`` if given, else the directory named by ``$STORE_AGENT_MODEL_MIRROR`` (if set and non-empty)."""
    if mirror is not None and str(mirror) != "":
        return Path(mirror)
    env = os.environ.get(MIRROR_ENV, "").strip()
    return Path(env) if env else None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- lookup and verification ----------------------------------------------------------------------------


def install_state(name: str | ModelSpec, model_dir: Path) -> str:
    """Cheap state without hashing: ``"installed"``, ``"missing"`` or ``"wrong size"``."""
    spec = get_spec(name)
    path = Path(model_dir) / spec.relpath
    if not path.is_file():
        return "missing"
    return "installed" if path.stat().st_size == spec.size else "wrong size"


def model_path(name: str | ModelSpec, model_dir: Path) -> Path:
    """Path of an installed model.

    Raises :class:`ModelNotInstalled` (message ends with the exact ``store-agent models pull NAME`` hint) when the
    file is absent, and :class:`ModelIntegrityError` when its size is wrong (the sha256 is checked by
    :func:`verify`, not on every lookup).
    """
    spec = get_spec(name)
    path = Path(model_dir) / spec.relpath
    if not path.is_file():
        raise ModelNotInstalled(f"model {spec.name!r} is not installed in {model_dir}: run `{pull_hint(spec.name)}`")
    actual = path.stat().st_size
    if actual != spec.size:
        raise ModelIntegrityError(f"model {spec.name!r} at {path} has {actual} bytes, expected {spec.size} "
                                  f"(truncated or corrupt): run `{pull_hint(spec.name)}`",
                                  expected=str(spec.size), actual=str(actual))
    return path


def verify(name: str | ModelSpec, model_dir: Path) -> VerifyResult:
    """Check the installed file's size and sha256 against the registry.

    A missing file gives ``ok=False, installed=False``; use :func:`verify_installed` for the "missing is fine"
    policy of the doctor.
    """
    spec = get_spec(name)
    path = Path(model_dir) / spec.relpath
    hint = f"run `{pull_hint(spec.name)}` to repair"
    if not path.is_file():
        return VerifyResult(spec.name, False, f"not installed ({path} missing): run `{pull_hint(spec.name)}`",
                            installed=False)
    size = path.stat().st_size
    if size != spec.size:
        return VerifyResult(spec.name, False, f"size mismatch at {path}: expected {spec.size} bytes, found {size} "
                            f"(truncated or corrupt); {hint}")
    actual = sha256_file(path)
    if actual != spec.sha256:
        return VerifyResult(spec.name, False, f"sha256 mismatch at {path}: expected {spec.sha256}, actual {actual} "
                            f"(corrupt or substituted); {hint}")
    return VerifyResult(spec.name, True, f"ok (sha256 {spec.sha256[:12]}…, {size} bytes)")


def verify_installed(model_dir: Path, required: Iterable[str] = ()) -> list[tuple[str, bool, str]]:
    """``(name, ok, detail)`` for every registry model, for ``store-agent doctor``.

    Installed models are verified (size + sha256): ``ok`` only if they match. Models that are not installed are
    reported with ``ok=True`` and detail ``"not installed"`` — a box only needs the models it uses — unless their
    name is in ``required`` (e.g. the detectors the config's cameras use), which makes them failures.
    """
    required = set(required)
    unknown = sorted(required - REGISTRY.keys())
    entries: list[tuple[str, bool, str]] = [(n, False, f"unknown model (known: {', '.join(REGISTRY)})")
                                            for n in unknown]
    for spec in REGISTRY.values():
        result = verify(spec, model_dir)
        if not result.installed and spec.name not in required:
            entries.append((spec.name, True, "not installed"))
        else:
            entries.append((result.name, result.ok, result.detail))
    return entries


# -- installation ---------------------------------------------------------------------------------------


def install(name: str | ModelSpec, model_dir: Path, *, mirror: Path | None = None,
            progress: Progress | None = None, force: bool = False) -> Path:
    """Install a model into ``model_dir`` and return its path.

    Source: ``mirror / spec.relpath`` when ``mirror`` is given or ``$STORE_AGENT_MODEL_MIRROR`` is set (offline
    boxes, tests), otherwise the pinned upstream URL (urllib). ``progress(done_bytes, total_bytes)`` is called as
    bytes arrive. An already installed file that verifies is kept (no copy) unless ``force``.

    Raises :class:`ModelIntegrityError` on a size/sha256 mismatch (nothing is installed),
    :class:`ModelSourceError` when the URL or mirror cannot provide the file.
    """
    spec = get_spec(name)
    target = Path(model_dir) / spec.relpath
    if not force and target.is_file() and verify(spec, model_dir).ok:
        if progress:
            progress(spec.size, spec.size)
        return target
    source_dir = resolve_mirror(mirror)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source_dir is not None:
        src_path = source_dir / spec.relpath
        origin = str(src_path)
        try:
            src: BinaryIO = open(src_path, "rb")
        except OSError as exc:
            raise ModelSourceError(f"model {spec.name!r}: cannot read {src_path} from the mirror {source_dir}: "
                                   f"{exc.strerror or exc}") from exc
    else:
        origin = spec.url
        src = _open_url(spec)
    try:
        with src:
            _stream_into(spec, src, target, origin, progress)
    except (OSError, urllib.error.URLError) as exc:  # a dropped connection, an unreadable mirror, a full disk
        raise ModelSourceError(f"model {spec.name!r}: copying from {origin} failed: {exc}; nothing was "
                               "installed") from exc
    log.info("installed model", extra={"model": spec.name, "path": str(target), "source": origin})
    return target


def _open_url(spec: ModelSpec) -> BinaryIO:
    request = urllib.request.Request(spec.url, headers={"User-Agent": "store-edge-agent model registry"})
    try:
        return urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelSourceError(f"model {spec.name!r}: cannot download {spec.url}: {reason}; on an offline box use "
                               f"--mirror DIR or set {MIRROR_ENV}") from exc


def _stream_into(spec: ModelSpec, src: BinaryIO, target: Path, origin: str, progress: Progress | None) -> None:
    """Copy ``src`` into a temp file next to ``target`` while hashing; rename it over ``target`` if it verifies."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        done = 0
        with os.fdopen(fd, "wb") as out:
            if progress:
                progress(0, spec.size)
            while chunk := src.read(CHUNK):
                done += len(chunk)
                if done > spec.size:
                    raise ModelIntegrityError(
                        f"model {spec.name!r} from {origin}: more than the expected {spec.size} bytes; nothing was "
                        "installed", expected=str(spec.size), actual=f">{spec.size}")
                digest.update(chunk)
                out.write(chunk)
                if progress:
                    progress(done, spec.size)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if done != spec.size or actual != spec.sha256:
            raise ModelIntegrityError(
                f"model {spec.name!r} from {origin}: sha256 mismatch: expected {spec.sha256}, actual {actual} "
                f"({done} of {spec.size} bytes); nothing was installed", expected=spec.sha256, actual=actual)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
