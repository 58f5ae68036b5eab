"""False accusations and recall on suspects trained by independent code (issue 12's benchmark).

The suspects come from ``bench/audit/independent/`` (plain transformers/peft code, own tokenizers,
nothing from ``distillscope.distill``): innocents of several families and data sources, students of
the reference model (controls that imitate it), students of our teacher's *unwatermarked* answers
(as teacher-like as an innocent gets), and positives trained on our watermarked answers.

Each model is measured once, with the audit's own test functions (``distillscope.audit.auditor``):
reading mode (same tokenizer, or cross-tokenizer), black-box on the first N of the corpus prompts for
every N of the grid (the answers to the first 500 prompts are drawn once; a smaller N is their
prefix, exactly what ``--max-prompts N`` puts to the model), and the passive zoo rank. Then every
(suspect, control kind, N) pair gets the verdict ``distillscope audit`` would give
(``audit.verdict.decide``). A test run compares these numbers with the real CLI on a few pairs
(``bench/audit/independent/audit_zoo.py``).

    python bench/audit/verdicts.py --manifest /work/cache/auditbench/zoo/manifest.json \\
        --corpus /work/cache/auditbench/answers_wm.jsonl [--n 40,200,500] [--only NAME,...] [--render]

The watermark key is the one the corpus was made with (``DISTILLSCOPE_HOME`` of the suspect zoo).
Per-model results are cached as JSON under ``--cache`` so the grid can be resumed or split across
processes (``--only``); ``--render`` joins them into bench/results/audit-verdicts.json and a table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

GRID = (40, 200, 500)
CONTROL_KINDS = ("text", "reference-imitator", "clean-teacher")


def _shared(corpus: str, settings: Any, n_max: int, reading_texts: int, zoo: str | None, progress: Any,
            zoo_prompts: int | None = None) -> Any:
    from distillscope.audit import auditor, radioactivity
    from distillscope.audit.corpus import WatermarkedCorpus, load_corpus, tokenize_corpus
    from distillscope.teacher import load_tokenizer
    from distillscope.watermark import scheme_from_settings

    full = load_corpus(corpus)
    scheme = scheme_from_settings(settings)
    tok = load_tokenizer(settings.teacher, settings=settings)
    config = auditor.AuditConfig(suspect="texts:-", control="texts:-", corpus=corpus, max_prompts=n_max,
                                 max_new_tokens=96, temperature=0.7, zoo=zoo, zoo_prompts=zoo_prompts,
                                 identity_probes=False)
    reading = WatermarkedCorpus(full.path, full.records[:reading_texts], full.sha256, full.key_ids)
    df = radioactivity.window_document_frequency([t.answer_ids for t in tokenize_corpus(full, tok)],
                                                 scheme.context_width)
    return auditor._Shared(config, settings, scheme, scheme.detector(tokenizer=tok), tok, reading,
                           full.prompts[:n_max], {w for w, c in df.items() if c >= config.min_window_df}, progress)


def measure(entry: dict, sh: Any, grid: tuple[int, ...]) -> dict:
    """Every test of one model, with black-box at each N of the grid."""
    from distillscope.audit import auditor, open_suspect
    from distillscope.audit.access import Answers

    t0 = time.perf_counter()
    model = open_suspect(f"local:{entry['path']}", settings=sh.settings)
    out: dict[str, Any] = {"name": entry["name"], "label": entry["label"], "kind": entry.get("kind"),
                           "family": entry.get("family"), "tokenizer": entry.get("tokenizer"),
                           "rho": entry.get("rho", 0), "method": entry.get("method"), "fingerprint": model.fingerprint}
    t = time.perf_counter()
    out["open"] = asdict(auditor._open_test(model, sh))
    out["open_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    answers = model.answer(sh.prompts, max_new_tokens=sh.config.max_new_tokens, temperature=sh.config.temperature,
                           seed=0, progress=sh.progress)
    out["blackbox"] = {str(n): asdict(auditor._blackbox_test(Answers(answers.prompts[:n], answers.texts[:n]), sh))
                       for n in grid if n <= len(answers.prompts)}
    out["blackbox_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    passive = auditor._passive_tests({"suspect": model}, sh)["suspect"]
    out["passive"] = asdict(passive)
    out["passive_seconds"] = time.perf_counter() - t
    out["seconds"] = time.perf_counter() - t0
    for test in [out["open"], out["passive"], *out["blackbox"].values()]:
        test.pop("curve", None)
        test.pop("chunk_scores", None)
    return out


def _model_audit(role: str, m: dict, n: int) -> Any:
    from distillscope.audit.combine import combine_audit
    from distillscope.audit.results import ModelAudit, TestResult

    tests = [TestResult(**m["open"])]
    if str(n) in m["blackbox"]:
        tests.append(TestResult(**m["blackbox"][str(n)]))
    tests.append(TestResult(**m["passive"]))
    comb = combine_audit({t.test: t.p_value for t in tests if t.ran})
    return ModelAudit(role, m["name"], m["name"], m["fingerprint"], tuple(tests), comb.p_value, comb.method)


def verdicts(models: list[dict], grid: tuple[int, ...], gamma: float = 0.25) -> list[dict]:
    """Every suspect against one control of each kind (not itself), at every N."""
    from distillscope.audit.verdict import decide

    controls = {}
    for kind in CONTROL_KINDS:
        pool = [m for m in models if m["label"] == "innocent" and m["kind"] == kind]
        if pool:
            controls[kind] = pool
    rows = []
    for s in models:
        for kind, pool in controls.items():
            c = next((m for m in pool if m["name"] != s["name"]), None)
            if c is None:
                continue
            for n in grid:
                if str(n) not in s["blackbox"]:
                    continue
                v = decide(_model_audit("suspect", s, n), _model_audit("control", c, n), alpha=1e-6,
                           control_alpha=0.01, gamma=gamma)
                tests = {k: (s[k]["p_value"] if s[k]["status"] == "ok" else None) for k in ("open", "passive")}
                rows.append({"suspect": s["name"], "label": s["label"], "kind": s["kind"], "rho": s["rho"],
                             "control": c["name"], "control_kind": kind, "n_prompts": n, "verdict": v.label,
                             "radioactivity_p": v.suspect_p, "control_p": v.control_p,
                             "open_p": tests["open"], "open_n": s["open"]["n_scored"],
                             "cross_tokenizer": s["open"]["details"].get("cross_tokenizer"),
                             "blackbox_p": s["blackbox"][str(n)]["p_value"],
                             "blackbox_n": s["blackbox"][str(n)]["n_scored"], "zoo_p": tests["passive"]})
    return rows


def render(cache: Path, out: Path, grid: tuple[int, ...]) -> None:
    from scipy import stats

    models = [json.loads(p.read_text()) for p in sorted(cache.glob("*.json"))]
    rows = verdicts(models, grid)
    innocent = [r for r in rows if r["label"] == "innocent"]
    false = [r for r in innocent if r["verdict"] == "trained on our outputs"]
    zoo_ps = [m["passive"]["p_value"] for m in models if m["label"] == "innocent" and m["passive"]["status"] == "ok"]
    open_ps = [m["open"]["p_value"] for m in models if m["label"] == "innocent" and m["open"]["status"] == "ok"]
    summary = {
        "models": len(models), "innocents": sum(m["label"] == "innocent" for m in models),
        "positives": sum(m["label"] == "positive" for m in models),
        "innocent_audits": len(innocent), "false_accusations": len(false),
        "innocent_verdicts": {v: sum(r["verdict"] == v for r in innocent) for v in sorted({r["verdict"] for r in innocent})},
        "zoo_p_ks_uniform": stats.kstest(zoo_ps, "uniform").pvalue if len(zoo_ps) >= 5 else None,
        "open_p_ks_uniform_innocents": stats.kstest(open_ps, "uniform").pvalue if len(open_ps) >= 5 else None,
    }
    result = {"summary": summary, "models": models, "verdicts": rows}
    out.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str))
    print("\n| suspect | label | kind | rho | tokenizer | reading mode p (n) | black-box p (n) at N | zoo p | "
          "verdicts (text / ref-imitator / clean-teacher control) at N |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in models:
        bb = ", ".join(f"{n}: {b['p_value']:.2g} ({b['n_scored']})" for n, b in m["blackbox"].items())
        op = m["open"]
        o = f"{op['p_value']:.2g} ({op['n_scored']}{', cross' if op['details'].get('cross_tokenizer') else ''})" \
            if op["status"] == "ok" else op["status"]
        zp = f"{m['passive']['p_value']:.2g}" if m["passive"]["status"] == "ok" else "—"
        vs = "; ".join(f"{n}: " + " / ".join(r["verdict"].replace("trained on our outputs", "ACCUSED")
                                           for r in rows if r["suspect"] == m["name"] and r["n_prompts"] == n)
                       for n in grid if str(n) in m["blackbox"])
        print(f"| {m['name']} | {m['label']} | {m['kind']} | {m['rho']} | {m['tokenizer']} | {o} | {bb} | {zp} | {vs} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", type=Path, default=Path("/work/cache/auditbench/zoo/manifest.json"))
    ap.add_argument("--corpus", default="/work/cache/auditbench/answers_wm.jsonl")
    ap.add_argument("--zoo", default=None, help="the passive test's zoo (default: as distillscope audit finds it)")
    ap.add_argument("--n", default=",".join(map(str, GRID)))
    ap.add_argument("--reading-texts", type=int, default=200, help="corpus texts read in reading mode")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--max-n-positive", type=int, default=200, help="largest N for positives (slow Gemma models)")
    ap.add_argument("--cache", type=Path, default=Path("/work/cache/auditbench/verdicts"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/audit-verdicts.json"))
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--zoo-prompts", type=int, default=None, help="rank on the zoo's first N prompts")
    ap.add_argument("--refresh-passive", action="store_true",
                    help="recompute only the passive test of cached models whose passive test was skipped")
    args = ap.parse_args()
    grid = tuple(int(x) for x in args.n.split(","))
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.render:
        render(args.cache, args.out, grid)
        return

    import torch

    from distillscope.progress import NULL_PROGRESS
    from distillscope.settings import load_settings

    torch.set_num_threads(1)
    settings = load_settings()
    entries = {e["name"]: e for e in json.loads(args.manifest.read_text())["suspects"]}
    for meta in sorted(args.manifest.parent.glob("*/suspect.json")):      # models trained since the manifest
        e = json.loads(meta.read_text())
        entries.setdefault(e["name"], {**e, "path": str(meta.parent)})
    entries = list(entries.values())
    only = {x for x in args.only.split(",") if x}
    sh, all_prompts = None, []
    for e in entries:
        cached = args.cache / f"{e['name']}.json"
        if only and e["name"] not in only or not Path(e["path"], "config.json").is_file():
            continue
        if cached.exists():
            res = json.loads(cached.read_text())
            if not (args.refresh_passive and res["passive"]["status"] != "ok"):
                continue
            from distillscope.audit import auditor, open_suspect

            if sh is None:
                sh = _shared(args.corpus, settings, max(grid), args.reading_texts, args.zoo, NULL_PROGRESS,
                             args.zoo_prompts)
            model = open_suspect(f"local:{e['path']}", settings=settings)
            passive = asdict(auditor._passive_tests({"suspect": model}, sh)["suspect"])
            passive.pop("curve", None)
            passive.pop("chunk_scores", None)
            cached.write_text(json.dumps({**res, "passive": passive}, default=str))
            print(f"{e['name']}: zoo p={passive['p_value']:.3g}", flush=True)
            continue
        if args.refresh_passive:
            continue
        n_grid = grid if e["label"] == "innocent" else tuple(n for n in grid if n <= args.max_n_positive)
        if sh is None:
            sh = _shared(args.corpus, settings, max(grid), args.reading_texts, args.zoo, NULL_PROGRESS,
                             args.zoo_prompts)
            all_prompts = list(sh.prompts)
        sh.prompts = all_prompts[:max(n_grid)]
        res = measure(e, sh, n_grid)
        (args.cache / f"{e['name']}.json").write_text(json.dumps(res, default=str))
        print(f"{e['name']}: open p={res['open']['p_value']:.3g} bb={[(n, round(b['p_value'], 4)) for n, b in res['blackbox'].items()]} "
              f"zoo p={res['passive']['p_value']:.3g} ({res['seconds']:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
