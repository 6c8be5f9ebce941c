"""train_model.py scaled out and crashed: a TF_CONFIG cluster on localhost, a killed worker,
SIGKILL mid-training."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, data_flags, final_step, run

# These tests check steps and restarts, not accuracy: a model whose steps cost little.
TINY_MODEL = ["--num_layers=1", "--num_nodes=8", "--num_conv=[8]", "--conv_len=[3]",
              "--batch_size=8"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Cluster:
    """One ps, the chief, one worker and an evaluator, each `train_model.py` with the same
    flags."""

    def __init__(self, args, logs):
        ps, chief, worker, evaluator = free_ports(4)
        self.spec = {"ps": [f"127.0.0.1:{ps}"], "chief": [f"127.0.0.1:{chief}"],
                     "worker": [f"127.0.0.1:{worker}"], "evaluator": [f"127.0.0.1:{evaluator}"]}
        self.args, self.logs, self.processes = args, logs, {}

    def start(self, role):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": self.spec, "task": {"type": role, "index": 0}}))
        path = self.logs / f"{role}-{len(self.processes)}.log"
        with open(path, "w") as log:  # the child keeps its own copy of the file
            self.processes[role] = subprocess.Popen(
                [sys.executable, os.path.join(REPO, "train_model.py"), *self.args],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        self.processes[role].log_path = path

    def log(self, role):
        with open(self.processes[role].log_path) as f:
            return f.read()

    def wait_for(self, role, text, timeout=120):
        deadline = time.monotonic() + timeout
        while text not in self.log(role):
            assert self.processes[role].poll() is None, f"{role} exited:\n{self.log(role)}"
            assert time.monotonic() < deadline, f"{role} never logged {text!r}"
            time.sleep(0.2)

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def cluster(dataset, tmp_path):
    model_dir = tmp_path / "model"
    args = [*data_flags(dataset), f"--model_dir={model_dir}", *TINY_MODEL,
            "--save_checkpoints_steps=100", "--save_checkpoints_secs=10"]  # secs: between evals
    cluster = Cluster(args, tmp_path)
    cluster.model_dir = model_dir
    yield cluster
    cluster.stop()


def test_cluster_trains_to_steps_and_survives_a_killed_worker(cluster):
    cluster.args.append("--steps=800")
    for role in ("ps", "chief", "worker", "evaluator"):
        cluster.start(role)
    cluster.wait_for("worker", "loss = ")  # the worker trains too, not just starts
    os.killpg(cluster.processes["worker"].pid, signal.SIGKILL)
    cluster.processes["worker"].wait()
    cluster.start("worker")
    assert cluster.processes["chief"].wait(timeout=300) == 0, cluster.log("chief")
    assert cluster.processes["worker"].wait(timeout=120) == 0, cluster.log("worker")
    # Asynchronous training: a worker's step in flight may land after the chief's last one.
    assert 800 <= final_step(cluster.model_dir) <= 802
    # The evaluator evaluated checkpoints as they came, then the last over every drawing.
    assert cluster.processes["evaluator"].wait(timeout=120) == 0, cluster.log("evaluator")
    evaluator = cluster.log("evaluator")
    assert evaluator.count("Saving dict for global step") >= 2
    assert "eval accuracy " in evaluator and " over 244 drawings" in evaluator
    assert "loss = " in cluster.log("worker"), "the restarted worker trained"
    assert cluster.processes["ps"].poll() is None  # a ps serves until it is stopped


def test_sigkill_mid_training_then_rerun_resumes(dataset, tmp_path):
    model_dir = tmp_path / "model"
    args = [os.path.join(REPO, "train_model.py"), *data_flags(dataset),
            f"--model_dir={model_dir}", *TINY_MODEL, "--steps=240",
            "--save_checkpoints_steps=40"]
    process = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (model_dir / "checkpoint").exists() or final_step(model_dir) < 80:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    checkpoint_at_kill = final_step(model_dir)
    assert 80 <= checkpoint_at_kill < 240
    result = run("train_model.py", *args[1:])
    assert f"Restoring parameters from {model_dir}/model.ckpt-{checkpoint_at_kill}" in \
        result.stderr
    assert final_step(model_dir) == 240
    assert "at step 240 over 244 drawings" in result.stdout
