"""``distillscope zoo``: build and inspect the passive test's zoo of independent models."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from distillscope.cli.common import RichProgress, console, print_table, state

zoo_app = typer.Typer(help="The zoo of independent models behind the audit's passive attribution test.",
                      no_args_is_help=True)


def _member(text: str) -> "object":
    from distillscope.audit import ZooCandidate, parse_spec

    spec, _, kind = text.partition("=")
    parse_spec(spec)
    return ZooCandidate(spec, kind or "user", "", "added by the user")


@zoo_app.command("build")
def build(
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the zoo (default HOME/audit-zoo.json, "
                                                           "which audits use when no --zoo is given)."),
    members_dir: Optional[Path] = typer.Option(None, "--members-dir", help="Where the built-in members are "
                                               "trained and kept (default HOME/zoo-members; reused when present)."),
    member: List[str] = typer.Option([], "--member", help="Add your own independent model: SPEC or SPEC=KIND "
                                     "(local:PATH or endpoint:URL#MODEL). Repeatable."),
    builtin: bool = typer.Option(True, "--builtin/--no-builtin", help="Train and include the built-in members."),
    quick: bool = typer.Option(False, "--quick", help="Six tiny scratch members only (tests, demo --quick)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="The zoo's prompts (default: the built-in "
                                           "prompt generator)."),
    n_prompts: int = typer.Option(48, "--n-prompts", min=5, help="How many built-in prompts."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", min=1, help="Longest answer per zoo prompt."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, help="Sampling temperature of the answers."),
    seed: int = typer.Option(0, "--seed", help="Seed of the answers and of the built-in prompts."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Our teacher (default: settings.teacher)."),
    reference: List[str] = typer.Option(["gemma3-270m"], "--reference", help="Reference model(s), as in audit."),
    dtype: str = typer.Option("bfloat16", "--dtype", help="Dtype of the teacher and references when scoring."),
) -> None:
    """Train the built-in independent models, add yours, score them all, and cache the zoo."""
    from distillscope.audit import build_default_zoo
    from distillscope.distill.prompts import PromptGenerator
    from distillscope.records import read_prompts
    from distillscope.teacher import load_model

    settings = state(ctx).settings()
    extra = [_member(m) for m in member]
    progress = RichProgress(transient=True)
    if prompts:
        zoo_prompts = [p for p in read_prompts(str(prompts)) if isinstance(p, str)]
    else:
        zoo_prompts = [i.prompt for i in PromptGenerator(seed=1000 + seed).generate(n_prompts)]
    reference_prompts = [i.prompt for i in PromptGenerator(seed=2000 + seed).generate(64 if not quick else 8)]
    teacher_model = load_model(teacher or settings.teacher, settings=settings, dtype=dtype, progress=progress)
    refs = [load_model(r, settings=settings, dtype=dtype, progress=progress) for r in reference]
    zoo = build_default_zoo(prompts=zoo_prompts, teacher=teacher_model, references=refs,
                            members_dir=members_dir or settings.home / "zoo-members", quick=quick, extra=extra,
                            builtin=builtin, reference_prompts=reference_prompts, max_new_tokens=max_new_tokens,
                            temperature=temperature, seed=seed, settings=settings, progress=progress)
    path = zoo.save(out or settings.home / "audit-zoo.json")
    _print(zoo)
    console.print(f"zoo written to {path}")


def _print(zoo: "object") -> None:
    rows = [(m.name, m.kind, m.family, m.source, f"{m.affinity:.4f}") for m in zoo.members]  # type: ignore[attr-defined]
    print_table("zoo members", ("name", "kind", "family", "source", "mean teacher affinity"), rows)


@zoo_app.command("show")
def show(path: Path = typer.Argument(..., help="A zoo JSON written by `zoo build`.")) -> None:
    """List a zoo's members and what it is valid for."""
    from distillscope.audit import Zoo

    zoo = Zoo.load(path)
    _print(zoo)
    console.print(f"teacher {zoo.teacher} · references {', '.join(zoo.references)} · {len(zoo.prompts)} prompts · "
                  f"max_new_tokens {zoo.max_new_tokens} · temperature {zoo.temperature} · seed {zoo.seed} · "
                  f"dtype {zoo.dtype} · built {zoo.created}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
