"""Running an audit: the suspect and the control through the same tests, then a verdict.

``run_audit(AuditConfig(...), settings=...)`` is what ``distillscope audit`` calls.
"""

from __future__ import annotations

import logging
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from distillscope.audit import attribution, radioactivity
from distillscope.audit.access import (Answers, LocalSuspect, Suspect, TextsSuspect, open_suspect, parse_spec,
                                       same_tokenizer, tokenizer_fingerprint)
from distillscope.audit.combine import combine_audit, floor_p
from distillscope.audit.corpus import WatermarkedCorpus, load_corpus, tokenize_corpus
from distillscope.audit.results import AuditResult, ModelAudit, TestResult
from distillscope.audit.verdict import decide
from distillscope.errors import AuditError
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)

LIMITATIONS = (
    "Watermark-removal attacks (paraphrasing the harvested data before training, or training on a small "
    "share of it) weaken both radioactivity tests; the passive attribution test needs no watermark, which "
    "is why it is run beside them.",
    "The radioactivity p-values hold for a suspect that is independent of our key; they say nothing about "
    "how much of its training data was ours.",
    "The passive test's null is comparative: the suspect is no closer to our teacher than the control. A "
    "control that is much weaker or stronger than the suspect makes it less informative; choose a control "
    "of the suspect's size and kind.",
    "Black-box results depend on the prompts: answers that rarely use windows frequent in our corpus give few "
    "scored tuples.",
    "A corpus filtered after the fact (e.g. only texts that passed watermark detection) or a key reused across "
    "providers breaks the independence the p-values rely on.",
)


@dataclass(frozen=True)
class AuditConfig:
    """Every choice of an audit.

    suspect, control (str): ``local:PATH`` | ``endpoint:URL[#MODEL]`` | ``texts:FILE``. Required.
    corpus (str): our watermarked corpus (JSONL of prompt/completion, or a harvest store). Required.
    prompts (str | None, None): prompts for black-box/passive tests; default the corpus prompts.
    tests (tuple, ("open", "blackbox", "passive")): which tests to run.
    alpha (float, 1e-6): accusation threshold on the suspect's combined p-value.
    control_alpha (float, 0.01): the control counts as significant at or below this.
    top_k (int, 1): suspect predictions scored per position in reading mode.
    max_prompts (int, 200): at most this many prompts are put to the models.
    max_new_tokens (int, 128), temperature (float, 0.7), seed (int, 0): how answers are sampled.
    samples (int, 1): answers drawn per prompt for the black-box test (seeds ``seed``, ``seed + 1``, …):
        more scored tuples from a small set of served prompts; the passive test uses the first.
    min_window_df (int, 2): black-box filter: a window must occur in at least this many corpus texts.
    teacher (str | None, None): our teacher (tokenizer and passive test); default settings.teacher.
    references (tuple, ("gemma3-270m",)): independent reference models of the passive test.
    identity_probes (bool, True): ask "who made you?" and record the answers as observations.
    """

    suspect: str
    control: str
    corpus: str
    prompts: str | None = None
    tests: tuple[str, ...] = ("open", "blackbox", "passive")
    alpha: float = 1e-6
    control_alpha: float = 0.01
    top_k: int = 1
    max_prompts: int = 200
    max_new_tokens: int = 128
    temperature: float = 0.7
    seed: int = 0
    samples: int = 1
    min_window_df: int = 2
    teacher: str | None = None
    references: tuple[str, ...] = ("gemma3-270m",)
    identity_probes: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "tests", tuple(self.tests))
        object.__setattr__(self, "references", tuple(self.references))
        unknown = [t for t in self.tests if t not in ("open", "blackbox", "passive")]
        checks = [
            (not unknown and self.tests, f"tests={','.join(self.tests)}", "choose from open,blackbox,passive"),
            (0 < self.alpha < 1, f"alpha={self.alpha!r}", "use a number in (0, 1), e.g. 1e-6"),
            (0 < self.control_alpha < 1, f"control_alpha={self.control_alpha!r}", "use a number in (0, 1)"),
            (1 <= self.top_k <= 20, f"top_k={self.top_k!r}", "use 1..20"),
            (self.max_prompts >= 1, f"max_prompts={self.max_prompts!r}", "use a whole number >= 1"),
            (self.max_new_tokens >= 1, f"max_new_tokens={self.max_new_tokens!r}", "use a whole number >= 1"),
            (1 <= self.samples <= 100, f"samples={self.samples!r}", "use 1..100 answers per prompt"),
            (self.min_window_df >= 1, f"min_window_df={self.min_window_df!r}", "use a whole number >= 1"),
            ("passive" not in self.tests or self.references, "references=()", "name at least one reference model"),
        ]
        for ok, what, hint in checks:
            if not ok:
                raise AuditError(f"invalid audit setting {what}", hint=hint)
        parse_spec(self.suspect)
        parse_spec(self.control)


@dataclass
class _Shared:
    """What both models' tests share (built once per audit)."""

    config: AuditConfig
    settings: Any
    scheme: Any
    detector: Any
    tokenizer: Any
    corpus: WatermarkedCorpus
    prompts: list[str]
    frequent_windows: set
    progress: Progress
    loaded: dict[str, Any] = field(default_factory=dict)
    scorers: tuple | None = None
    notes: list[str] = field(default_factory=list)


def _gamma(scheme: Any) -> float | None:
    """The exact null probability of a green tuple (KGW); None for schemes with unbounded scores."""
    g = getattr(scheme, "green_probability", None)
    return float(g) if g is not None else None


def _method(test: str, sh: _Shared) -> str:
    h = sh.scheme.context_width
    if test == "open":
        return (f"reading mode: our watermarked texts fed to the suspect, top-{sh.config.top_k} next-token "
                f"predictions scored as (window of {h} + predicted token); each window scored only at its first "
                "appearance in everything fed (prompts included), tuples deduplicated; exact binomial tail")
    per = f" ({sh.config.samples} per prompt, seeds {sh.config.seed}..{sh.config.seed + sh.config.samples - 1})" \
        if sh.config.samples > 1 else ""
    return (f"black-box: the model's answers{per} to {len(sh.prompts)} prompts re-tokenised with our tokenizer, "
            f"tuples (window of {h} + token) whose window occurs in ≥ {sh.config.min_window_df} corpus texts, "
            "deduplicated; exact binomial tail")


def _radio_result(test: str, sh: _Shared, selection: radioactivity.TupleSelection) -> TestResult:
    sc = radioactivity.score_pairs(sh.detector, selection.pairs)
    return TestResult(test, _method(test, sh), "ok", sc.n_scored, sc.score, "watermark score (green count for KGW)",
                      sc.p_value, "" if sc.n_scored else "no tuple survived the selection",
                      {"z": sc.z, **selection.summary()}, sc.curve, sc.chunk_scores)


def _open_test(model: Suspect, sh: _Shared) -> TestResult:
    if not isinstance(model, LocalSuspect):
        return TestResult("open", "reading mode", "skipped", note="needs open weights (local:PATH); "
                          "the black-box test covers this model")
    if not same_tokenizer(model.tokenizer, sh.tokenizer):
        return TestResult("open", "reading mode", "skipped",
                          note=f"the model's tokenizer ({tokenizer_fingerprint(model.tokenizer)}) differs from ours "
                               f"({tokenizer_fingerprint(sh.tokenizer)}); reading mode needs the same token ids, so "
                               "the tokenizer-agnostic black-box test is used instead")
    from distillscope.teacher import Teacher

    teacher_view = Teacher(model.loaded)
    texts = tokenize_corpus(sh.corpus, sh.tokenizer, lambda p: list(teacher_view.encode_prompt(p)))
    preds = model.next_token_topk(texts, sh.config.top_k, progress=sh.progress)
    selection = radioactivity.select_reading_pairs(texts, preds, sh.scheme.context_width)
    return _radio_result("open", sh, selection)


def _blackbox_test(answers: Answers, sh: _Shared) -> TestResult:
    ids = [sh.tokenizer.encode(t, add_special_tokens=False) for t in answers.texts if t]
    selection = radioactivity.select_blackbox_pairs(ids, sh.scheme.context_width, sh.frequent_windows)
    return _radio_result("blackbox", sh, selection)


def _scorers(sh: _Shared) -> tuple:
    if sh.scorers is None:
        from distillscope.teacher import load_model

        def load(spec: str) -> Any:
            return sh.loaded.get(spec) or load_model(spec, settings=sh.settings, dtype="float32")

        teacher = load(sh.config.teacher or sh.settings.teacher)
        refs = [load(r) for r in sh.config.references]
        sh.scorers = (attribution.LikelihoodScorer(teacher), tuple(attribution.LikelihoodScorer(r) for r in refs))
    return sh.scorers


def _passive_tests(answers: dict[str, Answers], sh: _Shared) -> dict[str, TestResult]:
    teacher, refs = _scorers(sh)
    aff = {role: attribution.teacher_affinity(a.prompts, a.texts, teacher, refs, progress=sh.progress,
                                              label=f"teacher affinity ({role})") for role, a in answers.items()}
    s, c = answers["suspect"], answers["control"]
    paired = s.prompts == c.prompts and any(s.prompts)
    out = {}
    for role, other in (("suspect", "control"), ("control", "suspect")):
        res = attribution.compare_affinities(aff[role], aff[other], paired=paired, seed=sh.config.seed)
        method = (f"{res.method}; affinity = (log p_teacher − max over references {', '.join(sh.config.references)} "
                  f"of log p_ref) per character; compared with the {other}'s answers")
        out[role] = TestResult("passive", method, "ok", res.n, res.statistic, res.statistic_name, res.p_value,
                               "" if res.n else f"no {'pairs' if paired else 'answers'} to compare",
                               {"mean_affinity": res.mean_affinity, "compared_with": other})
    return out


def _probe(model: Suspect, sh: _Shared) -> tuple[tuple[str, str], ...]:
    if not sh.config.identity_probes or isinstance(model, TextsSuspect):
        return ()
    ans = model.answer(list(attribution.IDENTITY_PROBES), max_new_tokens=48, temperature=0.0, seed=sh.config.seed)
    return tuple((q, (a or "")[:300]) for q, a in zip(ans.prompts, ans.texts))


def _cannot_read(model: Suspect, tokenizer: Any) -> bool:
    """Reading mode is impossible (no weights, or another tokenizer): black-box is the fallback."""
    return not isinstance(model, LocalSuspect) or not same_tokenizer(model.tokenizer, tokenizer)


def _model_audit(role: str, spec: str, model: Suspect, sh: _Shared, answers: Answers | None,
                 passive: TestResult | None) -> ModelAudit:
    tests: list[TestResult] = []
    if "open" in sh.config.tests:
        tests.append(_open_test(model, sh))
    if answers is not None and ("blackbox" in sh.config.tests or _cannot_read(model, sh.tokenizer)):
        tests.append(_blackbox_test(answers, sh))
    if passive is not None:
        tests.append(passive)
    comb = combine_audit({t.test: t.p_value for t in tests if t.ran})
    return ModelAudit(role, spec, model.name, model.fingerprint, tuple(tests), comb.p_value, comb.method,
                      _probe(model, sh))


def _corpus_check(sh: _Shared) -> tuple[dict[str, Any], list[str]]:
    cfg = sh.scheme.config()
    key_id = str(cfg.get("key_id", ""))
    texts = tokenize_corpus(sh.corpus, sh.tokenizer)
    det = sh.detector.score_pairs(radioactivity.corpus_pairs(texts, sh.scheme.context_width), dedup=True)
    problems = []
    if sh.corpus.key_ids and key_id not in sh.corpus.key_ids:
        problems.append(f"our key id {key_id} does not match the corpus (its records name key id "
                        f"{', '.join(sorted(sh.corpus.key_ids))}): wrong key?")
    if det.n_scored >= 50 and det.p_value > 1e-3:
        problems.append(f"our corpus does not carry the watermark of key id {key_id} (self-check p = "
                        f"{floor_p(det.p_value):.3g} over {det.n_scored} tuples): wrong key, or the corpus is not ours")
    return {"key_id": key_id, "n_scored": int(det.n_scored), "p_value": floor_p(det.p_value),
            "texts": len(texts), "corpus_key_ids": sorted(sh.corpus.key_ids)}, problems


def _read_prompts(config: AuditConfig, corpus: WatermarkedCorpus) -> list[str]:
    from distillscope.records import read_prompts

    if config.prompts:
        prompts = [p for p in read_prompts(config.prompts) if isinstance(p, str)]
    else:
        prompts = corpus.prompts
    return prompts[: config.max_prompts]


def _reproducibility(config: AuditConfig, sh: _Shared, models: dict[str, ModelAudit], command: str | None) -> dict:
    import hashlib

    import torch
    import transformers

    from distillscope import __version__

    return {
        "watermark": sh.scheme.config(), "corpus": {"path": sh.corpus.path, "sha256": sh.corpus.sha256,
                                                     "records": len(sh.corpus.records)},
        "prompts_sha256": hashlib.sha256("\n".join(sh.prompts).encode()).hexdigest(),
        "n_prompts": len(sh.prompts), "tokenizer": tokenizer_fingerprint(sh.tokenizer),
        "models": {role: {"spec": m.spec, "name": m.name, "fingerprint": m.fingerprint} for role, m in models.items()},
        "teacher": config.teacher or sh.settings.teacher, "references": list(config.references),
        "seed": config.seed, "config": asdict(config), "command": command or " ".join(sys.argv),
        "versions": {"distillscope": __version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
    }


def run_audit(config: AuditConfig, *, settings: Any = None, scheme: Any = None, progress: Progress | None = None,
              command: str | None = None, loaded: Mapping[str, Any] | None = None) -> AuditResult:
    """Run every requested test on the suspect and the control and decide the verdict.

    ``loaded`` maps model specs (the teacher's, a reference's) to models the caller already holds
    (teacher-runtime ``LoadedModel``); the passive test scores with those instead of loading them
    again (float32 otherwise). Any dtype gives a valid test: suspect and control are scored alike.
    """
    from distillscope.settings import load_settings
    from distillscope.teacher import load_tokenizer

    settings = settings or load_settings()
    if scheme is None:
        from distillscope.watermark import scheme_from_settings

        scheme = scheme_from_settings(settings)
    corpus = load_corpus(config.corpus)
    tokenizer = load_tokenizer(config.teacher or settings.teacher, settings=settings)
    prompts = _read_prompts(config, corpus)
    models = {"suspect": open_suspect(config.suspect, settings=settings, progress=progress),
              "control": open_suspect(config.control, settings=settings, progress=progress)}
    needs_answers = bool({"blackbox", "passive"} & set(config.tests)) or (
        "open" in config.tests and any(_cannot_read(m, tokenizer) for m in models.values()))
    if needs_answers and not prompts and not all(isinstance(m, TextsSuspect) for m in models.values()):
        raise AuditError(f"no prompts for the black-box and passive tests: {config.corpus} names none",
                         hint="pass --prompts FILE")
    texts = tokenize_corpus(corpus, tokenizer)
    df = radioactivity.window_document_frequency([t.answer_ids for t in texts], scheme.context_width)
    sh = _Shared(config, settings, scheme, scheme.detector(tokenizer=tokenizer), tokenizer, corpus, prompts,
                 {w for w, c in df.items() if c >= config.min_window_df}, ensure_progress(progress),
                 dict(loaded or {}))
    check, problems = _corpus_check(sh)
    answers: dict[str, Answers] = {}
    blackbox_answers: dict[str, Answers] = {}
    if needs_answers:
        for role, m in models.items():
            blackbox = "blackbox" in config.tests or _cannot_read(m, tokenizer)
            draws = [m.answer(prompts, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                              seed=config.seed + i, progress=sh.progress)
                     for i in range(config.samples if blackbox and not isinstance(m, TextsSuspect) else 1)]
            answers[role] = draws[0]
            blackbox_answers[role] = Answers(tuple(q for d in draws for q in d.prompts),
                                             tuple(t for d in draws for t in d.texts))
    passive = _passive_tests(answers, sh) if "passive" in config.tests else {}
    audits = {role: _model_audit(role, getattr(config, role), m, sh, blackbox_answers.get(role), passive.get(role))
              for role, m in models.items()}
    for role, a in audits.items():
        problems += [f"{role}: {t.test} test skipped: {t.note}" for t in a.tests if t.status == "skipped"]
    verdict = decide(audits["suspect"], audits["control"], alpha=config.alpha, control_alpha=config.control_alpha,
                     gamma=_gamma(scheme), problems=problems)
    logger.info("audit verdict: %s (suspect p=%.3g, control p=%.3g)", verdict.label, verdict.suspect_p,
                verdict.control_p)
    return AuditResult(verdict, audits["suspect"], audits["control"], _reproducibility(config, sh, audits, command),
                       LIMITATIONS, check)
