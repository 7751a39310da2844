"""Offline fixtures: tiny Debian packages and fake ``apt-get`` commands built in tmp_path."""
import io
import os
import stat
import tarfile
import textwrap

import pytest


def build_deb(path, files: dict, compression: str = "xz") -> bytes:
    """Write a minimal ``.deb`` (ar archive: debian-binary, control.tar, data.tar.<comp>)."""
    def tar_bytes(members: dict, mode: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    ext = {"xz": ".xz", "gz": ".gz", "": ""}[compression]
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", tar_bytes({"./control": b"Package: fake\n"}, "w:xz")),
        (f"data.tar{ext}", tar_bytes(files, f"w:{compression}" if compression else "w")),
    ]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = (f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}").encode() + b"`\n"
        out += header + data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(bytes(out))
    return bytes(out)


@pytest.fixture
def make_deb():
    return build_deb


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """Install a fake ``apt-get`` first on PATH. ``fake_apt(deb_path, needs_update=False)``:
    ``apt-get download`` copies ``deb_path`` into the cwd (after ``apt-get update`` if
    ``needs_update``), logging every call to ``calls.log``."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    log = tmp_path / "calls.log"

    def install(deb_path, needs_update: bool = False, fail: str = "",
                filename: str = "fake-examples_1.0-1_all.deb"):
        state = tmp_path / "updated"
        script = textwrap.dedent(f"""\
            #!/bin/sh
            echo "$@" >> "{log}"
            if [ "$1" = "update" ]; then touch "{state}"; exit 0; fi
            if [ -n "{fail}" ]; then printf 'partial' > "{filename}"; echo "E: {fail}" >&2; exit 100; fi
            if [ "{int(needs_update)}" = "1" ] && [ ! -e "{state}" ]; then
                echo "E: Unable to locate package fake-examples" >&2; exit 100
            fi
            cp "{deb_path}" "./{filename}"
            """)
        exe = bindir / "apt-get"
        exe.write_text(script)
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
        return log

    return install
