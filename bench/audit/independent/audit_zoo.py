"""Audit the independent suspect zoo with the ``distillscope audit`` CLI, exactly as a user runs it.

For each suspect of ``ZOO/manifest.json`` and each control kind, at each prompt count N::

    distillscope audit local:ZOO/SUSPECT --control local:ZOO/CONTROL --corpus CORPUS --max-prompts N \\
        --report REPORTS/SUSPECT__KIND__N.html

and collect from the JSON beside each report: the verdict label, the suspect's and the control's p-value per
test (every test entry found, so fields the audit gains later, e.g. a zoo p-value, are kept), wall time.
Control kinds: ``fair`` (another innocent trained on independent text; a clean Gemma fine-tune for Gemma
fine-tunes) and ``reference`` (a student of the reference model's answers, as ``distillscope demo`` builds it).

Writes ``bench/results/audit-independent.json`` and prints a markdown table. ``--resume`` reuses reports
already written. Run: ``python bench/audit/independent/audit_zoo.py --suspects a,b --n 40``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import data

ROOT = Path(__file__).resolve().parents[3]
ACCUSED = "trained on our outputs"
#: control of each kind, in order of preference (the first one that is not the suspect and exists)
CONTROLS = {
    "fair": ("inn-neox-mix-bpe", "inn-mistral-mix-bpe", "inn-gpt2-man-bpe", "inn-llama-doc"),
    "reference": ("ref-llama-gemma-bpe", "ref-gpt2-gemma-bpe", "inn-gpt2-pypi"),
}
GEMMA_FAIR = ("gemma-lora-clean",)


def read_manifest(zoo: Path) -> dict[str, dict]:
    path = zoo / "manifest.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run train_suspects.py first")
    return {e["name"]: e for e in json.loads(path.read_text())["suspects"]}


def pick_control(kind: str, suspect: dict, zoo: dict[str, dict]) -> str | None:
    prefs = CONTROLS[kind]
    if kind == "fair" and suspect.get("family") == "gemma3":
        prefs = GEMMA_FAIR + prefs
    return next((c for c in prefs if c in zoo and c != suspect["name"]), None)


def _is_p_key(key: str) -> bool:
    return "p_value" in key or key.endswith("_p") or key in {"p", "pvalue"}


def _tests(model: dict | None) -> dict[str, dict]:
    """Every test entry of one model's audit, keyed by test name (whatever fields it has)."""
    out = {}
    for t in (model or {}).get("tests", []) or []:
        if isinstance(t, dict) and "test" in t:
            out[str(t["test"])] = {k: t.get(k) for k in ("status", "p_value", "n_scored", "statistic",
                                                             "statistic_name", "method") if k in t}
            if t.get("note"):
                out[str(t["test"])]["note"] = str(t["note"])[:160]
            extra = {k: v for k, v in (t.get("details") or {}).items()
                     if _is_p_key(k) and isinstance(v, (int, float)) and not isinstance(v, bool)}
            if extra:
                out[str(t["test"])]["detail_p"] = extra
    return out


def _other_p_values(report: dict, prefix: str = "") -> dict[str, float]:
    """p-values anywhere in the report outside the per-model test lists (new fields: zoo p, ...)."""
    found: dict[str, float] = {}
    if isinstance(report, dict):
        for k, v in report.items():
            path = f"{prefix}.{k}" if prefix else k
            if k == "tests" or k in {"curve", "chunk_scores", "reproducibility"}:
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool) and _is_p_key(k):
                found[path] = float(v)
            elif isinstance(v, (dict, list)):
                found.update(_other_p_values(v, path))
    elif isinstance(report, list):
        for i, v in enumerate(report):
            found.update(_other_p_values(v, f"{prefix}[{i}]"))
    return found


def summarise(report: dict) -> dict[str, Any]:
    """The fields this benchmark keeps from one audit JSON (read defensively)."""
    verdict = report.get("verdict") or {}
    return {
        "verdict": verdict.get("label"), "suspect_p": verdict.get("suspect_p"), "control_p": verdict.get("control_p"),
        "needed_more": verdict.get("needed_more"), "problems": list(verdict.get("problems") or []),
        "summary": str(verdict.get("summary", ""))[:300],
        "suspect_tests": _tests(report.get("suspect")), "control_tests": _tests(report.get("control")),
        "suspect_combined_p": (report.get("suspect") or {}).get("combined_p"),
        "verdict_fields": {k: v for k, v in verdict.items() if isinstance(v, (int, float, str, type(None)))
                           and k != "summary"},
        "other_p_values": _other_p_values({k: v for k, v in report.items()
                                           if k not in {"suspect", "control", "verdict"}}),
    }


def audit_command(suspect: Path, control: Path, corpus: Path, n: int, report: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "distillscope", "audit", f"local:{suspect}", "--control", f"local:{control}",
            "--corpus", str(corpus), "--max-prompts", str(n), "--report", str(report), *extra]


def run_one(job: dict, resume: bool) -> dict:
    report = Path(job["report"])
    json_path = report.with_suffix(".json")
    row = {k: job[k] for k in ("suspect", "label", "kind", "family", "tokenizer", "rho", "control", "control_kind",
                               "n")}
    row["command"] = shlex.join(["distillscope", *job["cmd"][3:]])
    if not (resume and json_path.is_file()):
        env = {**os.environ, "DISTILLSCOPE_HOME": str(data.HOME), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "HF_HUB_OFFLINE": "1"}
        t0 = time.perf_counter()
        proc = subprocess.run(job["cmd"], env=env, capture_output=True, text=True)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        (report.parent / (report.stem + ".log")).write_text(proc.stdout + proc.stderr, encoding="utf-8")
        if proc.returncode != 0 or not json_path.is_file():
            row["error"] = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
            row["rc"] = proc.returncode
            return row
        (report.parent / (report.stem + ".wall")).write_text(str(row["wall_s"]))
    else:
        wall = report.parent / (report.stem + ".wall")
        row["wall_s"] = float(wall.read_text()) if wall.is_file() else None
    row.update(summarise(json.loads(json_path.read_text())))
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| suspect | label | control | N | verdict | suspect p (open / blackbox / passive) | control p | wall s |",
             "|---|---|---|---|---|---|---|---|"]

    def p(tests: dict, name: str) -> str:
        t = tests.get(name) or {}
        if t.get("status") != "ok":
            return t.get("status", "—") or "—"
        return f"{t['p_value']:.2g}"

    for r in rows:
        if "error" in r:
            lines.append(f"| {r['suspect']} | {r['label']} | {r['control_kind']} | {r['n']} | ERROR {r['error'][:60]} "
                         f"| | | {r.get('wall_s')} |")
            continue
        st, ct = r["suspect_tests"], r["control_tests"]
        names = sorted(set(st) | set(ct), key=lambda x: ("open", "blackbox", "passive").index(x)
                       if x in ("open", "blackbox", "passive") else 9)
        sp = " / ".join(p(st, n) for n in names)
        cp = " / ".join(p(ct, n) for n in names)
        lines.append(f"| {r['suspect']} | {r['label']} | {r['control_kind']} ({r['control']}) | {r['n']} | "
                     f"{r['verdict']} | {sp} | {cp} | {r['wall_s']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=data.CACHE / "zoo")
    parser.add_argument("--corpus", type=Path, default=data.CACHE / data.ANSWER_FILES["wm"])
    parser.add_argument("--suspects", default="", help="comma-separated names (default: the whole zoo)")
    parser.add_argument("--controls", default="fair,reference", help="control kinds: fair, reference")
    parser.add_argument("--pairs", default="", help="SUSPECT@KIND,... instead of suspects x controls")
    parser.add_argument("--n", default="40,200,500", help="prompt counts for innocents")
    parser.add_argument("--n-positive", default="", help="prompt counts for positives (default: --n)")
    parser.add_argument("--reports", type=Path, default=data.CACHE / "audits")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit-independent.json")
    parser.add_argument("--jobs", type=int, default=1, help="audits at once (the shared CPU allows 2)")
    parser.add_argument("--resume", action="store_true", help="reuse reports already written")
    parser.add_argument("--audit-args", default="", help="extra flags for distillscope audit, e.g. '--no-probes'")
    args = parser.parse_args()

    zoo = read_manifest(args.zoo)
    pairs = [tuple(x.split("@", 1)) for x in args.pairs.split(",")] if args.pairs else []
    if any(len(p) != 2 or p[1] not in CONTROLS for p in pairs):
        parser.error(f"--pairs wants SUSPECT@KIND with KIND in {', '.join(CONTROLS)}")
    names = [p[0] for p in pairs] if pairs else (args.suspects.split(",") if args.suspects else sorted(zoo))
    unknown = [n for n in names if n not in zoo]
    if unknown:
        parser.error(f"not in the zoo's manifest: {', '.join(unknown)}")
    ns = [int(x) for x in args.n.split(",")]
    ns_pos = [int(x) for x in args.n_positive.split(",")] if args.n_positive else ns
    args.reports.mkdir(parents=True, exist_ok=True)
    jobs = []
    wanted = pairs or [(name, kind) for name in names for kind in args.controls.split(",")]
    for name, kind in wanted:
        s = zoo[name]
        control = pick_control(kind, s, zoo)
        if control is None:
            print(f"skip {name} / {kind}: no control of that kind in the zoo", file=sys.stderr)
            continue
        for n in (ns_pos if s["label"] == "positive" else ns):
            report = args.reports / f"{name}__{kind}__{n}.html"
            jobs.append({"suspect": name, "label": s["label"], "kind": s["kind"], "family": s["family"],
                         "tokenizer": s["tokenizer"], "rho": s["rho"], "control": control, "control_kind": kind,
                         "n": n, "report": str(report),
                         "cmd": audit_command(args.zoo / name, args.zoo / control, args.corpus, n, report,
                                              shlex.split(args.audit_args))})
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(args.jobs, 2))) as pool:
        rows = list(pool.map(lambda j: run_one(j, args.resume), jobs))
    innocents = [r for r in rows if r["label"] == "innocent" and "error" not in r]
    summary = {
        "audits": len(rows), "errors": sum("error" in r for r in rows),
        "false_accusations": sum(r["verdict"] == ACCUSED for r in innocents), "innocent_audits": len(innocents),
        "positives_accused": {f"{r['suspect']}@{r['control_kind']}@{r['n']}": r["verdict"] == ACCUSED
                              for r in rows if r["label"] == "positive" and "error" not in r},
        "wall_s": round(time.perf_counter() - t0, 1),
        "hardware": "2-core AMD EPYC (shared with other agents), CPU only, 1 torch thread per audit",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "bench/audit/independent", "zoo": str(args.zoo),
                                    "corpus": str(args.corpus), "summary": summary, "rows": rows}, indent=2))
    print(markdown(rows))
    print(f"\n{summary['false_accusations']} false accusations in {summary['innocent_audits']} innocent audits; "
          f"{summary['errors']} errors; written to {args.out}")


if __name__ == "__main__":
    main()
