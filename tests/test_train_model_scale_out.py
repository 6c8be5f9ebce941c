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

from conftest import REPO, data_flags, run
from training import checkpoint_step

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
    """A ps, the chief, and workers or an evaluator, each `train_model.py` with the same
    flags."""

    def __init__(self, args, logs, roles):
        ports = iter(free_ports(len(roles)))
        self.spec = {role: [f"127.0.0.1:{next(ports)}"] for role in roles}
        self.args, self.logs, self.processes = args, logs, {}

    def start(self, role):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": self.spec, "task": {"type": role, "index": 0}}))
        path = self.logs / f"{role}-{len(self.processes)}.log"
        with open(path, "w") as log:  # the child keeps its own copy of the file
            self.processes[role] = subprocess.Popen(
                # --verbosity=1: the tests read TensorFlow's own log lines.
                [sys.executable, os.path.join(REPO, "train_model.py"), *self.args,
                 "--verbosity=1"],
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
def start_cluster(dataset, tmp_path):
    clusters = []

    def start(roles, *args):
        model_dir = tmp_path / "model"
        cluster = Cluster([*data_flags(dataset), f"--model_dir={model_dir}", *TINY_MODEL,
                           *args], tmp_path, roles)
        cluster.model_dir = model_dir
        clusters.append(cluster)
        for role in roles:
            cluster.start(role)
        return cluster
    yield start
    for cluster in clusters:
        cluster.stop()


def test_cluster_trains_to_steps_and_survives_a_killed_worker(start_cluster):
    # Enough steps that the chief alone cannot finish them while the worker restarts (about
    # 10 s): the restarted worker must be seen training.
    cluster = start_cluster(("ps", "chief", "worker"), "--steps=2000",
                            "--save_checkpoints_steps=200")
    cluster.wait_for("worker", "loss = ")  # the worker trains too, not just starts
    os.killpg(cluster.processes["worker"].pid, signal.SIGKILL)
    cluster.processes["worker"].wait()
    cluster.start("worker")
    assert cluster.processes["chief"].wait(timeout=300) == 0, cluster.log("chief")
    assert cluster.processes["worker"].wait(timeout=120) == 0, cluster.log("worker")
    # Asynchronous training: a worker's step in flight may land after the chief's last one.
    assert 2000 <= checkpoint_step(str(cluster.model_dir)) <= 2002
    assert "loss = " in cluster.log("worker"), "the restarted worker trained"
    assert cluster.processes["ps"].poll() is None  # a ps serves until it is stopped


def test_an_evaluator_task_evaluates_the_checkpoints(start_cluster):
    cluster = start_cluster(("ps", "chief", "evaluator"), "--steps=100",
                            "--save_checkpoints_steps=50", "--save_checkpoints_secs=1",
                            "--eval_sample=50")  # secs: the evaluator's wait between runs
    for role in ("chief", "evaluator"):
        assert cluster.processes[role].wait(timeout=300) == 0, cluster.log(role)
    evaluator = cluster.log("evaluator")
    # Checkpoints as they came, on the eval sample; the last one over every drawing.
    assert "eval_drawings = 50.0" in evaluator
    assert "eval_drawings = 244.0, global_step = 100," in evaluator
    assert "eval accuracy " in evaluator and " at step 100 over 244 drawings" in evaluator
    assert "eval accuracy" not in cluster.log("chief")  # the chief only trains


def test_sigkill_mid_training_then_rerun_resumes(dataset, tmp_path):
    model_dir = tmp_path / "model"
    args = [os.path.join(REPO, "train_model.py"), *data_flags(dataset),
            f"--model_dir={model_dir}", *TINY_MODEL, "--steps=240",
            "--save_checkpoints_steps=40", "--verbosity=1"]  # to read "Restoring ..."
    process = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (model_dir / "checkpoint").exists() or checkpoint_step(str(model_dir)) < 80:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    checkpoint_at_kill = checkpoint_step(str(model_dir))
    assert 80 <= checkpoint_at_kill < 240
    result = run("train_model.py", *args[1:])
    assert f"Restoring parameters from {model_dir}/model.ckpt-{checkpoint_at_kill}" in \
        result.stderr
    assert checkpoint_step(str(model_dir)) == 240
    assert "at step 240 over 244 drawings" in result.stdout
