"""The benchmarks' shared helpers (benchmarks/common.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import common  # noqa: E402


def _script(tmp_path, body):
    path = tmp_path / "child.py"
    path.write_text(body)
    return [sys.executable, str(path)]


def test_run_returns_the_output(tmp_path):
    result = common.run(_script(tmp_path, "import sys\nprint('out')\n"
                                          "print('err', file=sys.stderr)\n"))
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_a_failed_child_ends_on_its_own_error_line(tmp_path):
    command = _script(tmp_path, "import sys\nprint('progress', file=sys.stderr)\n"
                                "sys.exit('child.py: error: --conv_len must be a list')\n")
    with pytest.raises(common.CommandFailed,
                       match=r"^child\.py exited with 1: child\.py: error: --conv_len must be a "
                             r"list$"):
        common.run(command)
    with pytest.raises(common.CommandFailed, match="exited with 1: child.py: error"):
        common.run_for_usage(command)


def test_run_for_usage_gives_the_peak_memory(tmp_path):
    usage = common.run_for_usage(_script(tmp_path, "block = bytearray(200 * 2**20)\n"))
    assert usage.ru_maxrss > 200 * 1024  # KB


def test_the_step_breakdown_counts_the_flops_bench_speed_counts():
    import bench_step
    import hparams
    params = hparams.HParams()
    rows = 1000
    large = 2 * sum(bench_step.matmul_flop(*shape)
                    for shape in bench_step.large_matmul_shapes(rows, params))
    # What the large ones leave out: the forward's matmuls, [x_t, h] @ [kernel;
    # recurrent_kernel] a step, and the backward loop's dz @ recurrent_kernel^T, in each
    # layer and direction.
    units, inputs = params.num_nodes, params.num_conv[-1]
    forward = sum(2 * (i + units) * 4 * units
                  for i in [inputs] + [2 * units] * (params.num_layers - 1))
    backward_loop = params.num_layers * 2 * units * 4 * units
    left_out = 2 * (forward + backward_loop) * rows  # both directions
    assert large + left_out == pytest.approx(common.lstm_flop_per_point(params) * rows)
    assert bench_step.matmul_flop([3, 5], [7, 5], False, True) == 2 * 3 * 5 * 7
    assert bench_step.matmul_flop([5, 3], [5, 7], True, False) == 2 * 3 * 5 * 7


def test_the_projection_follows_the_power_law_through_the_recipe_end_points():
    import bench_recipe

    def result(run, minutes, steps, error):
        return {"run": run, "minutes_budget": minutes, "steps": steps, "minutes": minutes,
                "final_accuracy": 1 - error, "settings": ["--batch_size=32"]}
    # error = 4 * drawings^-0.25: 0.3 at (4 / 0.3)^4 = 31,604 drawings
    law = [result("recipe", m, s, 4 * (32 * s) ** -0.25) for m, s in ((5, 100), (10, 300))]
    lines = bench_recipe.projection(law + [result("tutorial", 10, 10, 0.9)], 0.7)
    assert lines[2] == "power law: error = 4 * drawings^-0.250"
    assert lines[3].startswith("top-1 0.7 (error 0.3) at 31,605 drawings, 988 steps of 32, ")
    assert bench_recipe.projection(law[:1], 0.7) is None
    assert bench_recipe.projection(law, 0.7, "final_mean_per_class_accuracy") is None
    for r in law:
        r["final_mean_per_class_accuracy"] = 1 - (1 - r["final_accuracy"]) / 2
    per_class = bench_recipe.projection(law, 0.7, "final_mean_per_class_accuracy")
    assert per_class[2] == "power law: error = 2 * drawings^-0.250"
    # 0.3 at (2 / 0.3)^4 = 1,975 drawings
    assert per_class[3].startswith("mean per-class accuracy 0.7 (error 0.3) at 1,975 drawings, ")
    rising = [result("recipe", m, 100 * m, 0.4 + m / 100) for m in (5, 10)]
    assert bench_recipe.projection(rising, 0.7)[-1].endswith("no projection")
