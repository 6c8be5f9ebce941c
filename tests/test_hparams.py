"""hparams.py: one declaration -> flags, hparams.json and its checks."""

import dataclasses
import json
import os

import pytest
from absl import flags

import cli
import hparams
from conftest import REPO

CLASSES = ["cat", "dog", "owl", "swan"]


def test_the_tutorials_defaults():
    defaults = hparams.HParams()
    assert (defaults.num_layers, defaults.num_nodes, defaults.num_conv, defaults.conv_len,
            defaults.time_stride, defaults.positions, defaults.cell, defaults.batch_norm,
            defaults.dropout, defaults.learning_rate, defaults.gradient_clipping_norm,
            defaults.batch_size) == \
        (3, 128, (48, 64, 96), (5, 5, 3), 1, False, "lstm", False, 0.3, 0.0001, 9.0, 8)
    assert hparams.ARCHITECTURE == ("num_layers", "num_nodes", "num_conv", "conv_len",
                                    "time_stride", "positions", "cell", "batch_norm",
                                    "classes")


def test_flags_are_derived_from_the_declaration():
    flag_values = flags.FlagValues()
    cli.define_flags(hparams.HParams, flag_values)
    flag_values(["prog", "--num_conv=[8, 8]", "--conv_len=[3, 3]", "--dropout=0.1"])
    names = {f.name for f in dataclasses.fields(hparams.HParams)} - {"classes"}
    assert set(flag_values) == names
    for field in dataclasses.fields(hparams.HParams):
        if field.name != "classes":
            assert flag_values[field.name].help.endswith(field.metadata["help"])
    assert cli.from_flags(hparams.HParams, flag_values, only_present=True) == dict(
        num_conv=(8, 8), conv_len=(3, 3), dropout=0.1)


@pytest.mark.parametrize("fields, message", [
    (dict(num_conv=(48,)), "--num_conv and --conv_len must have the same length"),
    (dict(dropout=1.5), "--dropout must be in [0, 1)"),
    (dict(num_layers=0), "--num_layers must be at least 1"),
    (dict(batch_size=0), "--batch_size must be at least 1"),
    (dict(cell="gru", rnn_kernel="block"),
     "--rnn_kernel=block has no gru version; use loop, cudnn or auto"),
])
def test_bad_values_are_one_line_errors(fields, message):
    with pytest.raises(cli.UserError) as error:
        hparams.HParams(**fields)
    assert str(error.value) == message


def test_first_run_saves_and_later_runs_rebuild_the_model(tmp_path):
    first = hparams.resolve(str(tmp_path), {"num_nodes": 32, "num_conv": (16, 16),
                                            "conv_len": (5, 3)}, CLASSES)
    saved = json.loads((tmp_path / "hparams.json").read_text())
    assert saved["num_nodes"] == 32 and saved["num_conv"] == [16, 16]
    assert saved["classes"] == CLASSES and saved["learning_rate"] == 0.0001
    assert hparams.load(str(tmp_path)) == first and first.num_classes == 4
    # No architecture given: the saved model; a training setting given: it applies.
    later = hparams.resolve(str(tmp_path), {"learning_rate": 0.01, "num_nodes": 32}, CLASSES)
    assert later == dataclasses.replace(first, learning_rate=0.01)
    assert hparams.load(str(tmp_path)) == first, "the saved file is left as it was"


def test_contradicting_the_saved_model_is_an_error(tmp_path):
    hparams.resolve(str(tmp_path), {"num_nodes": 32}, CLASSES)
    with pytest.raises(cli.UserError) as error:
        hparams.resolve(str(tmp_path), {"num_nodes": 64}, CLASSES)
    assert str(error.value) == (
        f"--num_nodes=64 contradicts the model saved in {tmp_path} (num_nodes=32); drop the "
        f"flag or use another --model_dir")
    with pytest.raises(cli.UserError) as error:
        hparams.resolve(str(tmp_path), {"num_conv": (1, 2, 3)}, CLASSES)
    assert "--num_conv=[1, 2, 3] contradicts" in str(error.value)
    with pytest.raises(cli.UserError) as error:
        hparams.resolve(str(tmp_path), {}, CLASSES[:3])
    assert str(error.value) == (
        f"{tmp_path} holds a model of 4 classes (cat, dog, owl, ...), not the 3 of the "
        f"classes file (cat, dog, owl); use another --model_dir")


def test_a_cluster_task_other_than_the_chief_saves_nothing(tmp_path):
    hparams.resolve(str(tmp_path), {}, CLASSES, save=False)
    assert not (tmp_path / "hparams.json").exists()


def test_an_earlier_versions_file_still_loads(tmp_path):
    old = dict(dataclasses.asdict(hparams.HParams(classes=tuple(CLASSES))),
               cell_type="block_lstm", num_classes=4)
    del old["cell"], old["rnn_kernel"]
    (tmp_path / "hparams.json").write_text(json.dumps(old))
    loaded = hparams.load(str(tmp_path))
    assert loaded.cell == "lstm" and loaded.rnn_kernel == "block"
    assert loaded.classes == tuple(CLASSES)


def test_a_trained_model_dir_needs_hparams_and_a_checkpoint(tmp_path):
    with pytest.raises(cli.UserError) as error:
        hparams.load_trained(str(tmp_path))
    assert str(error.value) == f"no hparams.json in {tmp_path}: not a model_dir of train_model.py"
    hparams.resolve(str(tmp_path), {}, CLASSES)
    with pytest.raises(cli.UserError) as error:
        hparams.load_trained(str(tmp_path))
    assert str(error.value) == f"no checkpoint in {tmp_path}"


def test_the_recipe_file_sets_hyperparameters_only_and_within_their_checks():
    # A misspelled or out-of-range line would stop the README's recipe command.
    path = os.path.join(REPO, "recipes", "fast.flags")
    flag_values = flags.FlagValues()
    cli.define_flags(hparams.HParams, flag_values)
    flag_values(["prog", f"--flagfile={path}"])
    overrides = cli.from_flags(hparams.HParams, flag_values, only_present=True)
    with open(path) as f:
        named = {line[2:].strip().split("=")[0] for line in f if line.startswith("--")}
    assert named and set(overrides) == named
    recipe = hparams.HParams(**overrides)
    assert all(getattr(recipe, name) != getattr(hparams.HParams(), name) for name in named)
