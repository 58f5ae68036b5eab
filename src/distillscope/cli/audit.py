"""``distillscope audit``: test a suspect for training on our outputs and write the evidence report."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from distillscope.cli.common import RichProgress, console, print_table, state


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(
        ctx: typer.Context,
        suspect: str = typer.Argument(..., help="The suspect: local:PATH | endpoint:URL or endpoint:URL#MODEL | texts:FILE."),
        control: str = typer.Option(..., "--control", help="The control model, same forms as SUSPECT."),
        corpus: Path = typer.Option(..., "--corpus", help="Our watermarked corpus: JSONL of prompt/completion "
                                                           "records, or a harvest store directory."),
        prompts: Optional[Path] = typer.Option(None, "--prompts", help="Prompts for the black-box and passive "
                                                                        "tests (default: the corpus prompts)."),
        tests: str = typer.Option("open,blackbox,passive", "--tests", help="Comma-separated tests to run."),
        alpha: float = typer.Option(1e-6, "--alpha", help="Accusation threshold on the radioactivity p-value "
                                                           "(H0: the suspect is independent of our key)."),
        control_alpha: float = typer.Option(0.01, "--control-alpha", help="The control counts as significant "
                                                                          "at or below this p-value."),
        weak_alpha: float = typer.Option(0.05, "--weak-alpha", help="A radioactivity p-value at or below this "
                                         "(but above --alpha) is 'inconclusive', with the evidence still needed."),
        top_k: int = typer.Option(1, "--top-k", help="Suspect predictions scored per position (reading mode)."),
        cross_continuation: int = typer.Option(0, "--cross-continuation", help="Cross-tokenizer reading mode: "
                                               "suspect tokens generated per prediction (1 = cheapest; 0 = 1 when "
                                               "its vocabulary is at least ours, else 4)."),
        max_prompts: int = typer.Option(200, "--max-prompts", help="Most prompts put to each model."),
        max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Longest answer per prompt."),
        temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature of the answers."),
        seed: int = typer.Option(0, "--seed", help="Seed of the answers and permutations."),
        samples: int = typer.Option(1, "--samples", help="Answers drawn per prompt for the black-box test "
                                                         "(seeds SEED, SEED+1, ...); the passive test uses the first."),
        min_window_df: int = typer.Option(2, "--min-window-df", help="Black-box filter: windows in at least "
                                                                     "this many corpus texts."),
        teacher: Optional[str] = typer.Option(None, "--teacher", help="Our teacher (default: settings.teacher)."),
        reference: List[str] = typer.Option(["gemma3-270m"], "--reference",
                                            help="Independent reference model(s) of the passive test."),
        reading_texts: Optional[int] = typer.Option(None, "--reading-texts", help="Reading mode reads only the "
                                                    "corpus's first N texts (cheaper)."),
        zoo_prompts: Optional[int] = typer.Option(None, "--zoo-prompts", help="Use only the zoo's first N "
                                                  "prompts for the passive test (cheaper)."),
        zoo: Optional[Path] = typer.Option(None, "--zoo", help="Zoo of independent models for the passive test "
                                           "(default: HOME/audit-zoo.json, else the shipped one); see `zoo build`."),
        probes: bool = typer.Option(True, "--probes/--no-probes", help="Ask identity probes (observations only)."),
        report: Optional[Path] = typer.Option(None, "--report", help="Write the HTML report here (JSON beside it)."),
    ) -> None:
        """Test a suspect for training on our watermarked outputs, beside a control; print the verdict."""
        from distillscope.audit import AuditConfig, run_audit, write_report

        settings = state(ctx).settings()
        config = AuditConfig(
            suspect=suspect, control=control, corpus=str(corpus), prompts=str(prompts) if prompts else None,
            tests=tuple(t.strip() for t in tests.split(",") if t.strip()), alpha=alpha, control_alpha=control_alpha,
            weak_alpha=weak_alpha, zoo=str(zoo) if zoo else None, zoo_prompts=zoo_prompts,
            reading_texts=reading_texts, top_k=top_k,
            cross_continuation=cross_continuation, max_prompts=max_prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
            samples=samples, min_window_df=min_window_df, teacher=teacher, references=tuple(reference), identity_probes=probes)
        result = run_audit(config, settings=settings, progress=RichProgress(transient=True),
                           command=shlex.join(["distillscope", *sys.argv[1:]]))
        rows = []
        for m in (result.suspect, result.control):
            for t in m.tests:
                rows.append((m.role, t.test, t.status, t.n_scored if t.ran else "", f"{t.statistic:.4g}" if t.ran else "",
                             f"{t.p_value:.3g}" if t.ran else t.note))
        print_table("audit tests", ("model", "test", "status", "n", "statistic", "p-value / note"), rows)
        console.print(f"[bold]verdict:[/] {result.verdict.label}")
        console.print(result.verdict.summary, highlight=False)
        if result.verdict.corroboration:
            console.print(result.verdict.corroboration, highlight=False)
        for problem in result.verdict.problems:
            console.print(f"[yellow]note:[/] {problem}", highlight=False)
        if report:
            html, js = write_report(result, report)
            console.print(f"report: {html} (JSON: {js})")
