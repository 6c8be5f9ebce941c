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
