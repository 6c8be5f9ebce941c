"""cli.py: flags derived from a config dataclass, their checks, the one-line error."""

import dataclasses
import typing

import pytest
from absl import flags

import cli


@dataclasses.dataclass(frozen=True)
class Toy:
    path: str = cli.option(help="A required path.")
    count: int = cli.option(3, "How many.", minimum=1)
    rate: float = cli.option(0.5, "A rate.", minimum=0, below=1)
    widths: tuple = cli.option((5, 3), "Widths.")
    mode: str = cli.option("a", "A mode.", choices=("a", "b"))
    verbose: bool = cli.option(False, "Talk more.")
    limit: typing.Optional[int] = cli.option(None, "An optional limit.", minimum=0)
    internal: typing.Optional[dict] = cli.option(None, flag=False)

    def __post_init__(self):
        cli.check(self)


def toy_flags(*argv):
    flag_values = flags.FlagValues()
    cli.define_flags(Toy, flag_values)
    flag_values(["prog", *argv])
    return flag_values


def test_flags_carry_the_declared_defaults_help_and_types():
    flag_values = toy_flags("--path=x")
    assert set(flag_values) >= {"path", "count", "rate", "widths", "mode", "verbose", "limit"}
    assert "internal" not in flag_values
    assert flag_values["count"].help == "How many." and flag_values["count"].default == 3
    assert flag_values["widths"].default == "[5, 3]"
    assert cli.from_flags(Toy, flag_values) == dict(
        path="x", count=3, rate=0.5, widths=(5, 3), mode="a", verbose=False, limit=None)
    assert Toy(**cli.from_flags(Toy, flag_values)) == Toy(path="x")


def test_only_the_flags_given():
    flag_values = toy_flags("--path=x", "--widths=[7]", "--noverbose")
    assert cli.from_flags(Toy, flag_values, only_present=True) == dict(
        path="x", widths=(7,), verbose=False)


def test_a_required_field_is_a_required_flag():
    with pytest.raises(flags.IllegalFlagValueError, match="--path must have a value"):
        toy_flags("--count=2")


@pytest.mark.parametrize("fields, message", [
    (dict(count=0), "--count must be at least 1"),
    (dict(rate=1.0), "--rate must be in [0, 1)"),
    (dict(rate=-0.1), "--rate must be in [0, 1)"),
    (dict(mode="c"), "--mode must be one of a, b, not 'c'"),
    (dict(limit=-1), "--limit must be at least 0"),
])
def test_checks_give_one_line_errors(fields, message):
    with pytest.raises(cli.UserError) as error:
        Toy(path="x", **fields)
    assert str(error.value) == message


@pytest.mark.parametrize("text", ["[5, 3", "[]", "[5, -3]", "[5, 3.5]", "5", "[true]"])
def test_integer_lists_are_checked(text):
    flag_values = toy_flags("--path=x", f"--widths={text}")
    with pytest.raises(cli.UserError) as error:
        cli.from_flags(Toy, flag_values)
    assert str(error.value) == ("--widths must be a list of positive integers like [5, 3], "
                                f"not {text!r}")
