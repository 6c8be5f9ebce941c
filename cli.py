"""What the three command lines share: flags derived from config dataclasses, and one way to
fail with one line.

A config is a dataclass whose fields are declared with `option(default, help, ...)`: the
field's default and help text are its flag's, and its checks (`minimum`, `below`, `choices`)
run when the config is built, from flags or from Python alike. An entry script's `main` calls
`define_flags(Config)` at import and `from_flags(Config, FLAGS)` once; nothing below it reads
flags. Anything the user can fix is raised as `UserError`; `run(main)` prints it as
`<script>: error: <message>` and exits 1, without a traceback.
"""

import dataclasses
import json
import os
import sys
import typing

from absl import app, flags

# The flags define_flags() defines belong to the entry script that calls it, so that its
# --help lists them.
flags.disclaim_key_flags()


class UserError(Exception):
    """A problem the user can fix (bad arguments, unusable data); the message is one line."""


def option(default=dataclasses.MISSING, help="", *, minimum=None, below=None, choices=None,
           flag=True, **more):
    """A config field. minimum/below: allowed range [minimum, below); choices: allowed values;
    flag=False: no command-line flag (set from Python, or derived by the entry script); more:
    what else the config's module wants to know of the field."""
    return dataclasses.field(default=default, metadata=dict(
        help=help, minimum=minimum, below=below, choices=choices, flag=flag, **more))


def _base_type(field):
    """int for `int` and `typing.Optional[int]`, and so on."""
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    return args[0] if typing.get_origin(field.type) is typing.Union else field.type


def _flag_fields(config_class):
    return [f for f in dataclasses.fields(config_class) if f.metadata.get("flag")]


def define_flags(config_class, flag_values=flags.FLAGS):
    """One absl flag for each field of config_class declared with option()."""
    for field in _flag_fields(config_class):
        kind, help_text = _base_type(field), field.metadata["help"]
        default = None if field.default is dataclasses.MISSING else field.default
        if field.metadata["choices"]:
            flags.DEFINE_enum(field.name, default, field.metadata["choices"], help_text,
                              flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_boolean(field.name, default, help_text, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(field.name, default, help_text, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(field.name, default, help_text, flag_values=flag_values)
        elif kind is tuple:  # a list of integers, written as JSON: "[48, 64, 96]"
            flags.DEFINE_string(field.name, json.dumps(list(default)), help_text,
                                flag_values=flag_values)
        else:
            flags.DEFINE_string(field.name, default, help_text, flag_values=flag_values)
        if field.default is dataclasses.MISSING:
            flags.mark_flag_as_required(field.name, flag_values=flag_values)


def from_flags(config_class, flag_values=flags.FLAGS, only_present=False):
    """{field: value} from the flags of config_class's fields; with only_present, just the
    ones given on the command line."""
    values = {}
    for field in _flag_fields(config_class):
        flag = flag_values[field.name]
        if only_present and not flag.present:
            continue
        value = flag.value
        if _base_type(field) is tuple:
            value = _int_list(field.name, value, field.default)
        values[field.name] = value
    return values


def _int_list(name, text, example):
    try:
        value = json.loads(text)
        if isinstance(value, list) and value and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            return tuple(value)
    except ValueError:
        pass
    raise UserError(f"--{name} must be a list of positive integers like "
                    f"{json.dumps(list(example))}, not {text!r}")


def check(config):
    """Checks each field against its option()'s minimum, below and choices."""
    for field in dataclasses.fields(config):
        value, meta = getattr(config, field.name), field.metadata
        if value is None or not meta:
            continue
        minimum, below, choices = meta["minimum"], meta["below"], meta["choices"]
        if choices and value not in choices:
            raise UserError(f"--{field.name} must be one of {', '.join(choices)}, "
                            f"not {value!r}")
        if below is not None and not (minimum <= value < below):
            raise UserError(f"--{field.name} must be in [{minimum}, {below})")
        if minimum is not None and value < minimum:
            raise UserError(f"--{field.name} must be at least {minimum}")


def run(main):
    """app.run(main) for an entry script whose main() takes no arguments: a bad flag, extra
    arguments and UserError end the program with one error line and exit status 1."""
    program = os.path.basename(sys.argv[0])

    def parse_flags(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            sys.exit(f"{program}: error: {e}")
        except SystemExit:  # absl's --help prints the help, then exits 1; asked for, it is 0
            if {"--help", "-h", "-?", "--helpshort", "--helpfull"} & set(argv[1:]):
                sys.exit(0)
            raise

    def guarded(argv):
        try:
            if len(argv) > 1:
                raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
            main()
        except UserError as e:
            sys.exit(f"{program}: error: {e}")
    app.run(guarded, flags_parser=parse_flags)
