"""DNA tasks re-draw their training fragments every epoch (``--extra resample``, default on):
recorded in the manifest and meta, never from validation / test regions, resumable exactly."""
import json
import os

import pytest
import torch

from sparsemix.data.dataset import FragmentDataset, ResampledFragmentDataset
from sparsemix.data.sampling import manifest_comments, read_manifest
from sparsemix.tasks import build_task
from sparsemix.train import TrainConfig, train
from sparsemix.train.checkpoint import load_checkpoint
from tests.sparsemix.tasks.test_dna import _cfg, _write_fasta


@pytest.fixture
def two_files(tmp_path):
    return [f"low={_write_fasta(tmp_path / 'a.fa', 0.3, 1, records=(12_000,))}",
            f"high={_write_fasta(tmp_path / 'b.fa', 0.6, 2, records=(12_000,))}"]


def test_training_fragments_are_redrawn_from_the_training_part_only(two_files, tmp_path):
    out = tmp_path / "run"
    td = build_task("fasta", _cfg(fasta=two_files, out=str(out), length=512,
                                  extra={"min_length": 256}))
    assert isinstance(td.train, ResampledFragmentDataset) and td.meta["resample"] is True
    manifest = read_manifest(out / "manifests" / "train.tsv")
    assert td.train.fragments == manifest
    assert any(line.startswith("resample: true") for line in
               manifest_comments(out / "manifests" / "train.tsv"))
    val, test = list(td.val.fragments), list(td.test.fragments)
    td.train.set_epoch(1)
    assert td.train.fragments != manifest and len(td.train) == len(manifest)
    # coordinate split: training fragments end a gap (one length) before the 80 % cut
    assert all(f.start + f.length <= int(0.8 * 12_000) - 512 for f in td.train.fragments)
    assert td.val.fragments == val and td.test.fragments == test  # fixed, as the manifests
    labels = [td.train.label(i) for i in range(len(td.train))]
    assert labels.count(0) == labels.count(1) == 20


def test_resample_false_serves_the_manifest_and_a_bad_value_is_named(two_files, tmp_path):
    out = tmp_path / "run"
    td = build_task("fasta", _cfg(fasta=two_files, out=str(out), length=512,
                                  extra={"min_length": 256, "resample": False}))
    assert type(td.train) is FragmentDataset and td.meta["resample"] is False
    assert any(line.startswith("resample: false") for line in
               manifest_comments(out / "manifests" / "train.tsv"))
    with pytest.raises(ValueError, match="--extra resample must be true or false"):
        build_task("fasta", _cfg(fasta=two_files, extra={"resample": "yes"}))


def test_a_run_made_before_resampling_is_read_back_without_it(two_files, tmp_path):
    out = tmp_path / "run"
    build_task("fasta", _cfg(fasta=two_files, out=str(out), length=512, extra={"min_length": 256}))
    path = out / "manifests" / "train.tsv"
    path.write_text("".join(line for line in path.open() if not line.startswith("# resample")))
    old = build_task("fasta", _cfg(fasta=two_files, out=str(out), length=512, readonly=True,
                                   extra={"min_length": 256}))
    assert type(old.train) is FragmentDataset and old.meta["resample"] is False


def _weights(out):
    return load_checkpoint(os.path.join(out, "last.pt"))["model"]


def test_a_resumed_run_draws_the_fragments_of_an_uninterrupted_one(two_files, tmp_path):
    def cfg(name, epochs, **extra):
        return TrainConfig(task="fasta", out=str(tmp_path / name), fasta=two_files, length=400,
                           train_size=16, val_size=4, test_size=4, epochs=epochs, channels=8,
                           batch_size=8, quiet=True, scheduler="constant",
                           extra={"min_length": 256, **extra})

    train(cfg("full", 2))
    part = cfg("part", 1)
    train(part)
    train(TrainConfig(**{**part.to_dict(), "epochs": 2, "resume": True}))
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    log = lambda name: [json.loads(line)["train_loss"]  # noqa: E731
                        for line in open(tmp_path / name / "metrics.jsonl")]
    assert log("full") == log("part")
    # and the re-drawing is what the trainer used: the same run on the fixed manifest differs
    train(cfg("fixed", 2, resample=False))
    assert log("fixed")[0] == log("full")[0] and log("fixed")[1:] != log("full")[1:]
