"""``v2d-vox``: one subcommand per API function, its flags generated from the function's signature
and docstring, so the CLI and the API always take the same parameters with the same defaults."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import typing
from collections.abc import Callable
from typing import Any

from .errors import V2DError


def _commands() -> dict[str, Callable]:
    from . import api

    return {name: getattr(api, name) for name in ("download", "reprocess", "scan") if hasattr(api, name)}


def _parse_value(text: str) -> Any:
    """JSON where it parses (lists, dicts, numbers, null), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _arg_help(doc: str) -> dict[str, str]:
    helps, current = {}, None
    for line in doc.splitlines():
        m = re.match(r"\s{8}([\w, ]+):\s*(.*)", line)
        if m:
            current = [n.strip() for n in m.group(1).split(",")]
            for n in current:
                helps[n] = m.group(2)
        elif current and line.startswith(" " * 12):
            for n in current:
                helps[n] += " " + line.strip()
    return helps


def _add_params(parser: argparse.ArgumentParser, fn: Callable) -> None:
    helps = _arg_help(fn.__doc__ or "")
    hints = typing.get_type_hints(fn)
    for name, p in inspect.signature(fn).parameters.items():
        text = helps.get(name, "")
        if p.default is inspect.Parameter.empty:
            parser.add_argument(name, nargs="+" if "list" in str(hints.get(name)) else None, help=text)
        elif hints.get(name) is bool:
            parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=p.default, help=text)
        else:
            parser.add_argument(f"--{name}", type=_parse_value, default=p.default,
                                help=f"{text} (default: {p.default!r})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="v2d-vox", description="Curate audio+video datasets into shards.")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = _commands()
    for name, fn in commands.items():
        _add_params(sub.add_parser(name, help=(fn.__doc__ or "").split("\n")[0], description=fn.__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter), fn)
    args = vars(parser.parse_args(argv))
    fn = commands[args.pop("command")]
    for name, value in args.items():  # a single positional list stays a plain string
        if isinstance(value, list) and len(value) == 1:
            args[name] = value[0]
    try:
        summary = fn(**args)
    except V2DError as e:
        print(f"v2d-vox: error: {e}", file=sys.stderr)
        return 2
    return 1 if isinstance(summary, dict) and summary.get("shards_failed") else 0


if __name__ == "__main__":
    sys.exit(main())
