"""The ``distillscope`` command line: a thin layer over the library.

Each capability has one module here exposing ``register(app)``; :func:`main` translates
every :class:`~distillscope.errors.DistillscopeError` into one readable line and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from distillscope import __version__
from distillscope.cli.common import State, err_console
from distillscope.errors import DistillscopeError

# One module per capability; each defines ``register(app: typer.Typer) -> None``.
COMMAND_MODULES = [
    "distillscope.cli.teacher",
    "distillscope.cli.watermark",
    "distillscope.cli.demo",
    "distillscope.cli.gateway",
    "distillscope.cli.gateway_admin",
    "distillscope.cli.train",
    "distillscope.cli.harvest",
    "distillscope.cli.traffic",
    "distillscope.cli.audit",
    "distillscope.cli.zoo",
]

app = typer.Typer(
    name="distillscope",
    help="Detect, stop and prove model distillation: watermarking gateway, traffic forensics, "
         "distillation and audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"distillscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML settings file (merged before flags).",
                                          envvar="DISTILLSCOPE_CONFIG"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log library messages to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = State(config_file=config, verbose=verbose)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _click_types(name: str) -> tuple[type[BaseException], ...]:
    """``name`` from click and from the copy of click that typer >= 0.20 vendors (both may be in use)."""
    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_EXIT = _click_types("Exit") + (typer.Exit,)
_ABORT = _click_types("Abort")
_CLICK_ERROR = _click_types("ClickException")


def main(argv: list[str] | None = None) -> int:
    """Console entry point. Returns the exit code (also used by tests)."""
    # Our own rich bars report long work; transformers' tqdm bars (weight loading, shard writing)
    # would interleave with them. Set before transformers is first imported by a command.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        rv = app(args=argv, prog_name="distillscope", standalone_mode=False)
        # Non-standalone typer returns the code of a typer.Exit, and Exit(130) for Ctrl-C / SIGTERM.
        code = rv if isinstance(rv, int) else 0
        if code == 130:
            err_console.print("interrupted")
        return code
    except _EXIT as exc:
        return getattr(exc, "exit_code", 0)
    except _ABORT:
        err_console.print("aborted")
        return 1
    except _CLICK_ERROR as exc:  # usage errors: bad flags, missing arguments, unknown commands
        exc.show()
        return getattr(exc, "exit_code", 2)
    except DistillscopeError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


def entry() -> None:  # pragma: no cover - thin wrapper
    sys.exit(main())
