"""Generate the CLI reference (docs/cli.md) from the command tree itself.

    python -m distillscope.cli.reference > docs/cli.md

A test fails when docs/cli.md no longer matches, so the reference cannot drift from ``--help``.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterator

import typer


def _walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    commands = getattr(cmd, "commands", None) or {}  # typer vendors click: no isinstance checks
    for name in sorted(commands):
        if not getattr(commands[name], "hidden", False):
            yield from _walk(commands[name], path + (name,))


def _param_row(param: Any) -> str:
    # typer's parameter classes are not always click.Argument/Option subclasses: go by type name.
    if param.param_type_name == "argument":
        names = f"`{(param.metavar or param.name or '').upper()}`"
        help_text = getattr(param, "help", None) or ""
    else:
        names = ", ".join(f"`{o}`" for o in param.opts + param.secondary_opts)
        help_text = param.help or ""
        if param.default not in (None, False, (), "") and not getattr(param, "is_flag", False):
            help_text += f" (default: `{param.default}`)"
    help_text = " ".join(help_text.split()).replace("|", "\\|")
    return f"| {names.replace('|', chr(92) + '|')} | {help_text} |"


def render_reference(app: typer.Typer | None = None) -> str:
    """Markdown reference of every command: usage line, help text and options."""
    if app is None:
        from distillscope.cli import app as root_app

        app = root_app
    root = typer.main.get_command(app)
    lines = ["# Command-line reference", "",
             "Generated from the command tree by `python -m distillscope.cli.reference > docs/cli.md`;",
             "every command also has `--help`.", ""]
    for path, cmd in _walk(root, ()):
        name = " ".join(("distillscope",) + path)
        lines += [f"## `{name}`", ""]
        lines += [inspect.cleandoc(cmd.help or ""), ""]
        params = [p for p in cmd.params if not getattr(p, "hidden", False) and p.name not in ("help",)]
        if params:
            lines += ["| parameter | meaning |", "|---|---|"] + [_param_row(p) for p in params] + [""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_reference(), end="")
