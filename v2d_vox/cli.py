"""``v2d-vox``: one subcommand per API function, its arguments built from the function's typed,
documented parameters (`v2d_vox.options`), so the CLI and the API take the same parameters with the
same defaults and help.

A parameter without a default is positional, the others are ``--name`` options. Types map to
arguments as: str, int, float as such; ``X | None`` also takes ``none``/``null``; ``list[str]`` one
or more values (a list); ``str | list[str]`` one value (a str) or more (a list); ``dict`` a JSON
object; ``str | dict`` a string, or a JSON object when it starts with ``{``; bool ``--x/--no-x``.
To add a subcommand: write the function with ``@documented`` and `Help`-annotated parameters (see
`v2d_vox.options`), export it from `v2d_vox.api` and add its name to COMMANDS."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__, api
from .errors import V2DError
from .options import ARGS_HEADER, help_of

COMMANDS = ("download", "reprocess", "scan", "recipe", "retry", "stats", "report", "presets")
NULLS = ("none", "null")


class _UsageError(Exception):
    """A bad command line: `main` prints it as one line and returns 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        """One line, no usage dump: ``v2d-vox download: error: argument --x: ...``."""
        raise _UsageError(f"{self.prog}: error: {message}")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default; descriptions keep their line breaks."""


class _Values(argparse.Action):
    """nargs="+": one value stays a plain value when the type allows a single one (``str | list[str]``);
    a lone none/null is None when the type allows None."""

    def __init__(self, *args: Any, single: bool, nullable: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.single, self.nullable = single, nullable

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if len(values) == 1 and self.nullable and values[0].lower() in NULLS:
            values = None
        elif len(values) == 1 and self.single:
            values = values[0]
        setattr(namespace, self.dest, values)


def _scalar(kind: type, nullable: bool) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if nullable and text.lower() in NULLS:
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None

    return convert


def _json_object(nullable: bool, or_str: bool) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if nullable and text.lower() in NULLS:
            return None
        if or_str and not text.lstrip().startswith("{"):
            return text
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(f"invalid JSON {text!r}: {e}") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
        return value

    return convert


def _argument(name: str, hint: Any, default: Any) -> tuple[list[str], dict[str, Any]]:
    """add_argument's flags and keywords for one parameter, from its type hint and default."""
    tp = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    nullable = type(None) in members
    kinds = {typing.get_origin(m) or m for m in members} - {type(None)}
    positional = default is inspect.Parameter.empty
    flags = [name] if positional else [f"--{name}"]
    doc = help_of(hint)
    kw: dict[str, Any] = {"help": doc.text.replace("%", "%%") if doc else ""}
    if not positional:
        kw["default"] = default
    if doc and doc.choices:  # argparse shows them in the metavar and checks them
        kw["choices"] = doc.choices
    if kinds == {bool} and not positional:
        kw["action"] = argparse.BooleanOptionalAction
    elif list in kinds and kinds <= {list, str} and all(typing.get_args(m) == (str,) for m in members
                                                        if typing.get_origin(m) is list):
        kw.update(nargs="+", action=_Values, single=str in kinds, nullable=nullable)
    elif dict in kinds and kinds <= {dict, str}:
        kw.update(type=_json_object(nullable, or_str=str in kinds), metavar="JSON" if kinds == {dict} else None)
    elif len(kinds) == 1 and kinds <= {str, int, float}:
        kw["type"] = _scalar(next(iter(kinds)), nullable)
    else:
        raise TypeError(f"v2d-vox cannot parse parameter {name!r} of type {tp}")
    return flags, kw


def _add_command(sub: argparse._SubParsersAction, name: str, fn: Callable) -> None:
    summary = inspect.getdoc(fn).partition(ARGS_HEADER)[0]
    parser = sub.add_parser(name, help=summary.split("\n")[0], description=summary, formatter_class=_Formatter)
    hints = typing.get_type_hints(fn, include_extras=True)
    for pname, param in inspect.signature(fn).parameters.items():
        flags, kw = _argument(pname, hints.get(pname, str), param.default)
        parser.add_argument(*flags, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="v2d-vox", description="Curate audio+video datasets into webdataset shards.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        _add_command(sub, name, getattr(api, name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand -> exit code: 0, 1 when shards failed, 2 for a bad command line or argument."""
    try:
        args = vars(build_parser().parse_args(argv))
    except _UsageError as e:
        print(e, file=sys.stderr)
        return 2
    fn = getattr(api, args.pop("command"))
    try:
        summary = fn(**args)
    except V2DError as e:
        print(f"v2d-vox: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the run loop has stopped the workers and said how to resume
        return 130
    return 1 if isinstance(summary, dict) and summary.get("shards_failed") else 0


if __name__ == "__main__":
    sys.exit(main())
