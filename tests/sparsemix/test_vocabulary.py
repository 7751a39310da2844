"""Every option vocabulary the CLI accepts is the library's own object, never a restated list."""
import argparse

import pytest

import topologies
from sparsemix import models, nn
from sparsemix.cli import build_parser
from sparsemix.models import registry, sequence_classifier
from sparsemix.models import _sequence_io
from sparsemix.nn import backends, paramixer, paramixer_encoder_layer
from sparsemix.tasks import TASK_OPTIONS, load_all
from sparsemix.train import TrainConfig, config, precision, recipe

# option -> the object its owner defines (the module that checks the names when it builds)
OWNERS = {
    "protocol": topologies.protocols.PROTOCOLS,
    "backend": backends.BACKENDS,
    "pooling": _sequence_io.POOLINGS,
    "model": registry.MODELS,
    "block": sequence_classifier.BLOCKS,
    "stem": sequence_classifier.STEMS,
    "position_init": _sequence_io.POSITION_INITS,
    "mix_init": paramixer_encoder_layer.MIX_INITS,
    "mix_mode": paramixer_encoder_layer.MIX_MODES,
    "score_scale": paramixer_encoder_layer.SCORE_SCALES,
    "weights_from": sequence_classifier.WEIGHTS_FROM,
    "optimizer": recipe.OPTIMIZERS,
    "scheduler": recipe.SCHEDULERS,
    "weight_mlp": paramixer.WEIGHT_MLPS,
    "precision": precision.PRECISIONS,
}


def _train_actions() -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["train"]._actions}, sub.choices


def test_every_vocabulary_is_its_owners_object():
    assert set(config.CHOICES) == set(OWNERS)
    for name, owned in OWNERS.items():
        assert config.CHOICES[name] is owned, name
    # and the public re-exports are the same objects
    assert nn.BACKENDS is backends.BACKENDS and nn.MIX_INITS is paramixer_encoder_layer.MIX_INITS
    assert models.BLOCKS is sequence_classifier.BLOCKS and models.POOLINGS is _sequence_io.POOLINGS
    assert topologies.PROTOCOLS is topologies.protocols.PROTOCOLS


@pytest.mark.parametrize("name", sorted(OWNERS))
def test_config_accepts_exactly_the_owners_names(name):
    for value in OWNERS[name]:
        TrainConfig(task="order", out="x", **{name: value}).validate()
    with pytest.raises(ValueError, match="--" + name.replace("_", "-")):
        TrainConfig(task="order", out="x", **{name: "no-such-name"}).validate()


def test_native_and_compiled_backends_are_accepted():
    # the bug: config had 4 backend names, so `--backend native` was refused
    for backend in ("native", "compiled"):
        TrainConfig(task="order", out="x", backend=backend).validate()


@pytest.mark.parametrize("name", sorted(OWNERS))
def test_help_lists_every_name_of_the_vocabulary(name):
    actions, _ = _train_actions()
    text = actions[name].help
    for value in OWNERS[name]:
        assert value in text, (name, value, text)


def test_bench_and_plot_offer_the_library_names():
    _, parsers = _train_actions()
    bench = {a.dest: a for a in parsers["bench"]._actions}
    plot = {a.dest: a for a in parsers["plot"]._actions}
    assert list(bench["protocol"].choices) == list(topologies.PROTOCOLS)
    assert list(plot["protocols"].choices) == list(topologies.PROTOCOLS)
    assert set(bench["backends"].choices) == (set(nn.BACKENDS) - {"auto"}) | {"attention"}


def test_topologies_get_dispatches_through_protocols(monkeypatch):
    built = []

    def ring(num_nodes, num_factors=None):
        built.append((num_nodes, num_factors))
        return topologies.chord(num_nodes, num_factors)

    monkeypatch.setitem(topologies.PROTOCOLS, "ring", ring)
    topologies.get("ring", 16, 2, radius=3)
    assert built == [(16, 2)]
    assert topologies.get("cdil", 16, radius=1).num_slots == 3
    with pytest.raises(ValueError, match=r"protocol must be one of chord, cdil, ring, got 'star'"):
        topologies.get("star", 16)


def test_defaults_come_from_the_recipe():
    cfg = TrainConfig()
    for name, value in recipe.DEFAULTS.items():
        assert getattr(cfg, name) == value, name
    assert config.LEGACY_DEFAULTS is recipe.LEGACY_DEFAULTS
    assert config.TASK_DEFAULTABLE is recipe.TASK_DEFAULTABLE
    load_all()
    for task, options in TASK_OPTIONS.items():  # a task may only fill the options left at auto
        assert set(options.model_defaults) <= set(recipe.TASK_DEFAULTABLE), task
