"""``distillscope demo``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer

from distillscope.cli.common import RichProgress, console, print_table, state


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        ctx: typer.Context,
        quick: bool = typer.Option(False, "--quick", help="Tiny models: a smoke test in under 2 minutes."),
        workdir: Optional[Path] = typer.Option(None, "--workdir",
                                               help="Where the demo writes its database, students and report "
                                                    "(default: a fresh temporary directory)."),
    ) -> None:
        """Play the whole case on embedded defaults: watermark, gateway, detection, distillation, audit."""
        from distillscope.demo import DemoContext, run_demo, timeline

        settings = state(ctx).settings()
        wd = workdir or Path(tempfile.mkdtemp(prefix="distillscope-demo-"))
        wd.mkdir(parents=True, exist_ok=True)
        console.print(f"[bold]distillscope demo[/] ({'quick, tiny models' if quick else 'bundled teacher'}); "
                      f"working in {wd}")

        def show(res) -> None:
            print_table(f"{res.title}  [dim]({res.seconds:.1f}s)[/]", res.columns, res.rows)
            for note in res.notes:
                console.print(f"  {note}")

        results = run_demo(DemoContext(settings=settings, workdir=wd, quick=quick, progress=RichProgress()),
                           on_result=show)
        console.print(f"[bold green]demo finished[/]: {len(results)} acts in "
                      f"{sum(r.seconds for r in results):.0f}s; artifacts in {wd}")
        console.print(f"timeline: {timeline(results)}")
