import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from sparsemix.data import genomes
from sparsemix.data.fasta import FastaError
from sparsemix.data.fetch import cache_dir
from sparsemix.data.sampling import read_manifest
from sparsemix.tasks import TASKS, build_task
from sparsemix.tasks import dna


def _cfg(**kw):
    base = dict(length=1024, train_size=40, val_size=10, test_size=20, seed=0, fasta=None,
                reverse_complement=False, extra={}, out=None)
    base.update(kw)
    return SimpleNamespace(**base)


def _write_fasta(path: Path, gc: float, seed: int, records=(20_000,)) -> str:
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for i, n in enumerate(records):
            seq = "".join(rng.choice("GC") if rng.random() < gc else rng.choice("at")
                          for _ in range(n))
            handle.write(f">rec{i}\n" + "\n".join(seq[j:j + 70] for j in range(0, n, 70)) + "\n")
    return str(path)


def test_tasks_are_registered():
    from sparsemix.tasks import load_all
    load_all()
    assert {"dna-species", "dna-arabidopsis", "fasta"} <= set(TASKS)


def test_fasta_task_coordinate_split(tmp_path):
    a = _write_fasta(tmp_path / "a.fa", 0.3, 1)
    b = _write_fasta(tmp_path / "b.fa.txt", 0.6, 2, records=(30_000, 25_000))
    out = tmp_path / "run"
    td = build_task("fasta", _cfg(fasta=[f"low={a}", f"high={b}"], out=str(out)))
    assert td.class_names == ["low", "high"] and td.num_classes == 2
    assert (len(td.train), len(td.val), len(td.test)) == (40, 10, 20)
    assert td.variable_length and td.vocab_size == 8 and td.input == "tokens"
    # the model is sized from the configured length, not from the longest fragment drawn
    longest = max(f.length for s in (td.train, td.val, td.test) for f in s.fragments)
    assert td.max_len == td.meta["length"] >= longest
    assert td.meta["split_mode"] == "coordinate"
    x, y = td.train[0]
    assert x.dtype == torch.long and x.dim() == 1 and 256 <= len(x) <= 1024 and y.dim() == 0
    assert int(x.max()) <= 7 and int(x.min()) >= 3  # bases only, no padding or specials
    # manifests on disk are exactly what the datasets serve
    for split in ("train", "val", "test"):
        assert read_manifest(out / "manifests" / f"{split}.tsv") == getattr(td, split).fragments
    # test fragments lie in the last 10 % of each record
    for f in td.test.fragments:
        n = 20_000 if f.file == a else {"rec0": 30_000, "rec1": 25_000}[f.record]
        assert f.start >= int(0.9 * n)
    labels = [td.train.label(i) for i in range(len(td.train))]
    assert labels.count(0) == labels.count(1) == 20


def test_fasta_task_holds_out_whole_files_and_is_deterministic(tmp_path):
    files = {lab: [_write_fasta(tmp_path / f"{lab}{i}.fa", gc, 10 * i + j, records=(5_000,))
                   for i in range(3)] for j, (lab, gc) in enumerate((("x", 0.3), ("y", 0.6)))}
    entries = [f"{lab}={p}" for lab, ps in files.items() for p in ps]
    td = build_task("fasta", _cfg(fasta=entries, length=512, extra={"min_length": 512}))
    assert td.meta["split_mode"] == "files" and not td.variable_length and td.max_len == 512
    assert {f.file for f in td.test.fragments} == {files["x"][2], files["y"][2]}
    assert {f.file for f in td.val.fragments} == {files["x"][1], files["y"][1]}
    again = build_task("fasta", _cfg(fasta=entries, length=512, extra={"min_length": 512}))
    assert again.train.fragments == td.train.fragments
    other_seed = build_task("fasta", _cfg(fasta=entries, length=512, seed=1,
                                          extra={"min_length": 512}))
    assert other_seed.train.fragments != td.train.fragments


def test_reverse_complement_option_reaches_training_split_only(tmp_path):
    a = _write_fasta(tmp_path / "a.fa", 0.3, 1)
    b = _write_fasta(tmp_path / "b.fa", 0.6, 2)
    td = build_task("fasta", _cfg(fasta=[f"a={a}", f"b={b}"], reverse_complement=True))
    assert td.train.reverse_complement and not td.val.reverse_complement
    assert not td.test.reverse_complement


def test_fasta_task_bad_input(tmp_path):
    a = _write_fasta(tmp_path / "a.fa", 0.3, 1)
    b = _write_fasta(tmp_path / "b.fa", 0.6, 2)
    with pytest.raises(ValueError, match="needs --fasta"):
        build_task("fasta", _cfg())
    with pytest.raises(ValueError, match="at least two labels"):
        build_task("fasta", _cfg(fasta=[f"a={a}"]))
    with pytest.raises(ValueError, match=r"label 'b' has no file"):
        build_task("fasta", _cfg(fasta=[f"a={a}", "b="]))
    with pytest.raises(ValueError, match="must look like LABEL=PATH"):
        build_task("fasta", _cfg(fasta=[f"a={a}", b]))
    with pytest.raises(FileNotFoundError, match="missing.fa"):
        build_task("fasta", _cfg(fasta=[f"a={a}", f"b={tmp_path}/missing.fa"]))
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    with pytest.raises(FastaError, match="empty.fa: the file is empty"):
        build_task("fasta", _cfg(fasta=[f"a={a}", f"b={empty}"]))
    with pytest.raises(ValueError, match="longer than the model's max_len 512"):
        build_task("fasta", _cfg(fasta=[f"a={a}", f"b={b}"], extra={"max_len": 512}))
    with pytest.raises(ValueError, match="split 'files' needs at least 3 files"):
        build_task("fasta", _cfg(fasta=[f"a={a}", f"b={b}"], extra={"split": "files"}))
    short = _write_fasta(tmp_path / "short.fa", 0.5, 3, records=(600,))
    with pytest.raises(ValueError, match="class 'b' has no sequence in the train split"):
        build_task("fasta", _cfg(fasta=[f"a={a}", f"b={short}"]))
    with pytest.raises(ValueError, match=r"no region is at least 256 bases long in \['.*short.fa"):
        build_task("fasta", _cfg(fasta=[f"a={a}", f"b={short}"], extra={"gap": 0}))


@pytest.fixture
def fake_catalogue(tmp_path, monkeypatch):
    """Five tiny 'species' (distinct GC), three strains each, in place of the real packages."""
    fake = {}
    paths = {}
    for s, species in enumerate(genomes.BACTERIAL_SPECIES):
        for i, split in enumerate(("train", "val", "test")):
            key = f"sp{s}-{split}"
            paths[key] = Path(_write_fasta(tmp_path / f"{key}.fa", 0.3 + 0.08 * s, 100 * s + i,
                                           records=(6_000, 300)))
            fake[key] = genomes.Genome(key, species, split, "ragout-examples", "unused", "X",
                                       split, min_record_length=1_000)
    monkeypatch.setattr(dna, "GENOMES", fake)
    monkeypatch.setattr(dna, "genome_path", lambda key: paths[key])
    return fake


def test_species_task_holds_out_strains(fake_catalogue, tmp_path):
    td = build_task("dna-species", _cfg(out=str(tmp_path / "run"), train_size=50, val_size=10,
                                        test_size=25))
    assert td.class_names == list(genomes.BACTERIAL_SPECIES)
    assert td.variable_length and td.meta["split_mode"] == "files"
    for split in ("train", "val", "test"):
        ds = getattr(td, split)
        assert {fake_catalogue[f.file].split for f in ds.fragments} == {split}
        assert {f.record for f in ds.fragments} == {"rec0"}  # the 300-bp 'plasmid' is dropped
    assert td.meta["sources"]["sp0-test"]["package"] == "ragout-examples==2.3-4"
    assert (tmp_path / "run" / "manifests" / "test.tsv").exists()
    with pytest.raises(ValueError, match="unknown species"):
        build_task("dna-species", _cfg(extra={"species": ["E. coli", "Z. zebra"]}))


def test_fasta_task_trains_end_to_end_in_variable_length_mode(tmp_path):
    from sparsemix.train import TrainConfig, predict, train

    a = _write_fasta(tmp_path / "a.fa", 0.3, 1, records=(8_000,))
    b = _write_fasta(tmp_path / "b.fa.gz.txt", 0.6, 2, records=(8_000,))
    out = tmp_path / "run"
    cfg = TrainConfig(task="fasta", out=str(out), fasta=[f"low={a}", f"high={b}"], length=400,
                      train_size=16, val_size=6, test_size=6, epochs=1, channels=8, batch_size=8,
                      quiet=True, reverse_complement=True, extra={"min_length": 256, "gap": 400})
    results = train(cfg)
    assert results["test"]["count"] == 6
    assert (out / "manifests" / "train.tsv").exists() and (out / "best.pt").exists()
    pred = predict(str(out), "test")
    assert pred["probs"].shape == (6, 2)
    assert sorted(pred["lengths"].tolist()) == sorted(f.length for f in
                                                      read_manifest(out / "manifests" / "test.tsv"))


def test_a_run_records_its_inputs_and_refuses_when_one_changed(tmp_path, monkeypatch):
    import json
    import os
    import stat

    from sparsemix.errors import RunError
    from sparsemix.train import TrainConfig, evaluate, train

    (tmp_path / "fa").mkdir()
    a = _write_fasta(tmp_path / "fa" / "a.fa", 0.3, 1, records=(8_000,))
    b = _write_fasta(tmp_path / "fa" / "b.fa", 0.6, 2, records=(8_000,))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    cfg = TrainConfig(task="fasta", out=str(out), fasta=["low=fa/a.fa", "high=./fa/b.fa"],
                      length=300, train_size=8, val_size=4, test_size=4, epochs=1, channels=8,
                      batch_size=8, quiet=True, extra={"min_length": 256, "gap": 300})
    train(cfg)
    saved = json.loads((out / "config.json").read_text())
    assert saved["fasta"] == [f"low={os.path.realpath(a)}", f"high={os.path.realpath(b)}"]
    inputs = json.loads((out / "manifests" / "inputs.json").read_text())
    assert set(inputs) == {os.path.realpath(a), os.path.realpath(b)}
    assert all(v.startswith("sha256:") and len(v) == 7 + 64 for v in inputs.values())
    # evaluate from another directory on a read-only run: works, writes nothing
    monkeypatch.chdir(tmp_path / "fa")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    for p in [*out.rglob("*"), out]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        result = evaluate(str(out))
    finally:
        for p in [out, *out.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert result["count"] == 4
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    # an input edited after training: evaluate and resume refuse, naming the file; nothing rewritten
    manifest = (out / "manifests" / "test.tsv").read_text()
    with open(a, "a") as f:
        f.write(">extra\nACGTACGT\n")
    with pytest.raises(RunError, match=f"input {os.path.realpath(a)} changed"):
        evaluate(str(out))
    with pytest.raises(RunError, match="changed since this run was made"):
        train(TrainConfig(**{**saved, "epochs": 2, "resume": True}))
    assert (out / "manifests" / "test.tsv").read_text() == manifest
