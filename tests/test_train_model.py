"""train_model.py as the user runs it: the install check, what it prints, one-line errors."""

import re

import pytest

import hparams
from conftest import data_flags, error_line, run


def test_self_test_needs_no_data(tmp_path):
    # With the tutorial's --cell_type, which names an LSTM kernel.
    result = run("train_model.py", "--self_test", f"--model_dir={tmp_path}", "--steps=20",
                 "--num_layers=1", "--num_nodes=16", "--cell_type=block_lstm")
    saved = hparams.load(str(tmp_path))
    assert (saved.cell, saved.rnn_kernel) == ("lstm", "block")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("eval accuracy ") and \
        lines[0].endswith(" at step 20 over 36 drawings")
    assert lines[1].startswith("  top-3 accuracy ")
    assert lines[2].startswith(f"best SavedModel (by eval accuracy): {tmp_path}/export/best/")
    assert lines[3] == f"TensorBoard: tensorboard --logdir {tmp_path}"
    # The same model, evaluated only: nothing trained, the same figures.
    again = run("train_model.py", "--self_test", f"--model_dir={tmp_path}", "--evaluate_only")
    assert again.stdout.splitlines()[:2] == lines[:2]


def test_progress_lines_instead_of_tensorflows_chatter(tmp_path):
    result = run("train_model.py", "--self_test", f"--model_dir={tmp_path}", "--steps=40",
                 "--log_steps=20", "--num_layers=1", "--num_nodes=16",
                 "--save_checkpoints_steps=20")
    progress = [line.split("] ", 1)[1] for line in result.stderr.splitlines()
                if "] step " in line]
    assert len(progress) == 2, result.stderr
    pattern = (r"step {step}/40 \({percent}%\)  [\d,.]+ drawings/s  elapsed 0:\d\d:\d\d  "
               r"ETA 0:\d\d:\d\d  loss \d+\.\d{{4}}")
    # The evaluation of step 20 may come before or after that step's line; the second
    # line names its accuracy.
    assert re.fullmatch(pattern.format(step=20, percent=50) +
                        r"(  eval accuracy \d\.\d{4} \(step 20\))?", progress[0]), progress[0]
    assert re.fullmatch(pattern.format(step=40, percent=100) +
                        r"  eval accuracy \d\.\d{4} \(step 20\)", progress[1]), progress[1]
    assert re.search(r"evaluation at step 20 \(\d+ s with the export\): accuracy \d\.\d{4}, "
                     r"top-3 \d\.\d{4}, loss \d+\.\d{4} over 36 drawings", result.stderr)
    for chatter in ("global_step/sec", "Restoring parameters", "SavedModel written",
                    "Saving checkpoints", "loss = "):
        assert chatter not in result.stderr, chatter
    # absl's --verbosity brings TensorFlow's own lines back.
    again = run("train_model.py", "--self_test", f"--model_dir={tmp_path}", "--steps=60",
                "--verbosity=1")
    assert "SavedModel written" in again.stderr and "Saving checkpoints" in again.stderr


@pytest.mark.parametrize("args, message", [
    (["--num_conv=[48, 64"], "--num_conv must be a list of positive integers like "
                             "[48, 64, 96], not '[48, 64'"),
    (["--cell_type=lstm", "--cell=gru"], "give --cell_type or --cell and --rnn_kernel, not "
                                         "both"),
    (["--num_nodes=64"], "--num_nodes=64 contradicts the model saved in {model_dir} "
                         "(num_nodes=32); drop the flag or use another --model_dir"),
])
def test_bad_flags_fail_with_one_line(dataset, tmp_path, args, message):
    # A model_dir that holds a model of num_nodes=32 (hparams.json only: it fails before use).
    hparams.resolve(str(tmp_path), {"num_nodes": 32},
                    ["butterfly", "circle", "square", "triangle"])
    result = run("train_model.py", *data_flags(dataset), f"--model_dir={tmp_path}", *args,
                 check=False)
    assert error_line(result) == "train_model.py: error: " + message.format(model_dir=tmp_path)
