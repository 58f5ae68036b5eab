"""Running an audit: the suspect and the control through the same tests, then a verdict.

``run_audit(AuditConfig(...), settings=...)`` is what ``distillscope audit`` calls.
"""

from __future__ import annotations

import logging
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from distillscope.audit import attribution, crossread, radioactivity
from distillscope.audit.access import (Answers, LocalSuspect, Suspect, TextsSuspect, open_suspect, parse_spec,
                                       same_tokenizer, tokenizer_fingerprint)
from distillscope.audit.combine import ACCUSATION_H0, combine_audit, floor_p
from distillscope.audit.corpus import WatermarkedCorpus, load_corpus, tokenize_corpus
from distillscope.audit.results import AuditResult, ModelAudit, TestResult
from distillscope.audit.verdict import decide
from distillscope.audit.zoo import H0_ZOO, Zoo, mean_affinity
from distillscope.errors import AuditError
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)

LIMITATIONS = (
    "Watermark-removal attacks (paraphrasing the harvested data before training, or training on a small "
    "share of it) weaken both radioactivity tests. Measured on 600 of our answers (docs/audit.md, laundering): "
    "deleting or replacing half of the words leaves a green fraction of 0.39 / 0.32 (γ = 0.25) and 15-16 % "
    "of answers detectable alone, a small model's paraphrase 0.43; a student inherits less than its text "
    "carries, and a distiller who neutralises the watermark at decoding (not measured) can remove more. The "
    "passive attribution test needs no watermark, which is why it is reported beside them, but it only "
    "corroborates: it never makes or blocks an accusation.",
    "The radioactivity p-values hold for a suspect that is independent of our key; they say nothing about "
    "how much of its training data was ours.",
    "The passive test's null is a population one (H0: " + H0_ZOO + "). Its p-value cannot go below "
    "1/(zoo size + 1), and a suspect unlike every zoo model (e.g. a much stronger instruction-tuned model) can "
    "be more teacher-like than all of them without having seen our outputs.",
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
    alpha (float, 1e-6): accusation threshold on the suspect's radioactivity p-value (Holm over the
        radioactivity tests; passive attribution never enters it).
    control_alpha (float, 0.01): the control counts as significant at or below this.
    weak_alpha (float, 0.05): a radioactivity p-value at or below this but above alpha is "suggestive":
        the verdict is "inconclusive" and says how much more evidence a follow-up needs.
    top_k (int, 1): suspect predictions scored per position in reading mode.
    cross_continuation (int, 0): cross-tokenizer reading mode: suspect tokens generated per prediction
        (the first of them top-k, the rest greedy) before re-encoding with our tokenizer; 1 = cheapest;
        0 = automatic: 1 when the suspect's vocabulary is at least as large as ours (its tokens are
        usually as long as ours), else 4.
    max_prompts (int, 200): at most this many prompts are put to the models.
    max_new_tokens (int, 128), temperature (float, 0.7), seed (int, 0): how answers are sampled.
    samples (int, 1): answers drawn per prompt for the black-box test (seeds ``seed``, ``seed + 1``, …):
        more scored tuples from a small set of served prompts; the passive test uses the first.
    min_window_df (int, 2): black-box filter: a window must occur in at least this many corpus texts.
    teacher (str | None, None): our teacher (tokenizer and passive test); default settings.teacher.
    references (tuple, ("gemma3-270m",)): independent reference models of the passive test.
    zoo (str | None, None): the passive test's zoo (JSON from ``distillscope zoo build``); default
        ``HOME/audit-zoo.json``, else the zoo shipped for the bundled teacher and reference.
    reading_texts (int | None, None): reading mode reads only the corpus's first N texts (cheaper; a
        function of the corpus order alone, so the p-value stays exact).
    zoo_prompts (int | None, None): use only the zoo's first N prompts (cheaper; the members' statistics
        are recomputed on the same prompts from their per-prompt affinities).
    identity_probes (bool, True): ask "who made you?" and record the answers as observations.
    """

    suspect: str
    control: str
    corpus: str
    prompts: str | None = None
    tests: tuple[str, ...] = ("open", "blackbox", "passive")
    alpha: float = 1e-6
    control_alpha: float = 0.01
    weak_alpha: float = 0.05
    top_k: int = 1
    cross_continuation: int = 0
    max_prompts: int = 200
    max_new_tokens: int = 128
    temperature: float = 0.7
    seed: int = 0
    samples: int = 1
    min_window_df: int = 2
    teacher: str | None = None
    references: tuple[str, ...] = ("gemma3-270m",)
    zoo: str | None = None
    zoo_prompts: int | None = None
    reading_texts: int | None = None
    identity_probes: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "tests", tuple(self.tests))
        object.__setattr__(self, "references", tuple(self.references))
        unknown = [t for t in self.tests if t not in ("open", "blackbox", "passive")]
        checks = [
            (not unknown and self.tests, f"tests={','.join(self.tests)}", "choose from open,blackbox,passive"),
            (0 < self.alpha < 1, f"alpha={self.alpha!r}", "use a number in (0, 1), e.g. 1e-6"),
            (0 < self.control_alpha < 1, f"control_alpha={self.control_alpha!r}", "use a number in (0, 1)"),
            (self.alpha < self.weak_alpha < 1, f"weak_alpha={self.weak_alpha!r}", "use a number in (alpha, 1)"),
            (1 <= self.top_k <= 20, f"top_k={self.top_k!r}", "use 1..20"),
            (0 <= self.cross_continuation <= 32, f"cross_continuation={self.cross_continuation!r}",
             "use 1..32, or 0 for automatic"),
            (self.max_prompts >= 1, f"max_prompts={self.max_prompts!r}", "use a whole number >= 1"),
            (self.max_new_tokens >= 1, f"max_new_tokens={self.max_new_tokens!r}", "use a whole number >= 1"),
            (1 <= self.samples <= 100, f"samples={self.samples!r}", "use 1..100 answers per prompt"),
            (self.min_window_df >= 1, f"min_window_df={self.min_window_df!r}", "use a whole number >= 1"),
            (self.reading_texts is None or self.reading_texts >= 1, f"reading_texts={self.reading_texts!r}",
             "use a whole number >= 1, or leave it unset to read every corpus text"),
            (self.zoo_prompts is None or self.zoo_prompts >= 1, f"zoo_prompts={self.zoo_prompts!r}",
             "use a whole number >= 1, or leave it unset for all of the zoo's prompts"),
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
    zoo: Zoo | None = None
    notes: list[str] = field(default_factory=list)


def _gamma(scheme: Any) -> float | None:
    """The exact null probability of a green tuple (KGW); None for schemes with unbounded scores."""
    g = getattr(scheme, "green_probability", None)
    return float(g) if g is not None else None


def _method(test: str, sh: _Shared, cross: int = 0) -> str:
    h = sh.scheme.context_width
    rules = (f"each window scored only at its first appearance in everything fed (prompts included), tuples "
             "deduplicated; exact binomial tail")
    if test == "open" and cross:
        return (f"cross-tokenizer reading mode: the suspect reads each prefix of our watermarked texts as text "
                f"(its own tokenizer), its top-{sh.config.top_k} next tokens, continued greedily to "
                f"{cross} tokens, are re-encoded with ours and scored "
                f"as (window of {h} + predicted token); " + rules)
    if test == "open":
        return (f"reading mode: our watermarked texts fed to the suspect, top-{sh.config.top_k} next-token "
                f"predictions scored as (window of {h} + predicted token); " + rules)
    per = f" ({sh.config.samples} per prompt, seeds {sh.config.seed}..{sh.config.seed + sh.config.samples - 1})" \
        if sh.config.samples > 1 else ""
    return (f"black-box: the model's answers{per} to {len(sh.prompts)} prompts re-tokenised with our tokenizer, "
            f"tuples (window of {h} + token) whose window occurs in ≥ {sh.config.min_window_df} corpus texts, "
            "deduplicated; exact binomial tail")


def _radio_result(test: str, sh: _Shared, selection: radioactivity.TupleSelection, *, units: int,
                  unit_name: str, cross: int = 0) -> TestResult:
    sc = radioactivity.score_pairs(sh.detector, selection.pairs)
    return TestResult(test, _method(test, sh, cross), "ok", sc.n_scored, sc.score,
                      "watermark score (green count for KGW)", sc.p_value,
                      "" if sc.n_scored else "no tuple survived the selection",
                      {"z": sc.z, "null": ACCUSATION_H0, "units": units, "unit_name": unit_name,
                       "cross_tokenizer": bool(cross), "cross_continuation": cross, **selection.summary()},
                      sc.curve, sc.chunk_scores)


def _open_test(model: Suspect, sh: _Shared) -> TestResult:
    if not isinstance(model, LocalSuspect):
        return TestResult("open", "reading mode", "skipped", note="needs open weights (local:PATH); "
                          "the black-box test covers this model")
    h = sh.scheme.context_width
    corpus = sh.corpus
    if sh.config.reading_texts:
        corpus = WatermarkedCorpus(corpus.path, corpus.records[:sh.config.reading_texts], corpus.sha256,
                                   corpus.key_ids)
    if not same_tokenizer(model.tokenizer, sh.tokenizer):
        records = [(r.prompt, r.completion) for r in corpus.records]
        cross = crossread.prepare_texts(records, sh.tokenizer, model.loaded)
        steps = sh.config.cross_continuation or (1 if len(model.tokenizer) >= len(sh.tokenizer) else 4)
        preds = crossread.cross_tokenizer_predictions(cross, sh.tokenizer, model.loaded, sh.config.top_k,
                                                      continuation=steps, context_width=h, progress=sh.progress)
        selection = radioactivity.select_reading_pairs([c.ours for c in cross], preds, h)
        return _radio_result("open", sh, selection, units=len(cross), unit_name="texts", cross=steps)
    from distillscope.teacher import Teacher

    teacher_view = Teacher(model.loaded)
    texts = tokenize_corpus(corpus, sh.tokenizer, lambda p: list(teacher_view.encode_prompt(p)))
    preds = model.next_token_topk(texts, sh.config.top_k, progress=sh.progress)
    selection = radioactivity.select_reading_pairs(texts, preds, h)
    return _radio_result("open", sh, selection, units=len(texts), unit_name="texts")


def _blackbox_test(answers: Answers, sh: _Shared) -> TestResult:
    ids = [sh.tokenizer.encode(t, add_special_tokens=False) for t in answers.texts if t]
    selection = radioactivity.select_blackbox_pairs(ids, sh.scheme.context_width, sh.frequent_windows)
    return _radio_result("blackbox", sh, selection, units=len(ids), unit_name="answers")


def _scorers(sh: _Shared, dtype: str = "float32") -> tuple:
    if sh.scorers is None:
        from distillscope.teacher import load_model

        def load(spec: str) -> Any:
            return sh.loaded.get(spec) or load_model(spec, settings=sh.settings, dtype=dtype)

        teacher = load(sh.config.teacher or sh.settings.teacher)
        refs = [load(r) for r in sh.config.references]
        sh.scorers = (attribution.LikelihoodScorer(teacher), tuple(attribution.LikelihoodScorer(r) for r in refs))
    return sh.scorers


def default_zoo_paths(settings: Any) -> list[Path]:
    """Where an audit looks for a zoo when none is named: the user's, then the one shipped with distillscope."""
    home = getattr(settings, "home", None)
    paths = [Path(home) / "audit-zoo.json"] if home else []
    return paths + [Path(__file__).with_name("data") / "zoo-default.json"]


def _zoo(sh: _Shared) -> tuple[Zoo | None, str]:
    """The zoo for the passive test, checked against this audit's teacher and references; or why not."""
    from distillscope.errors import DistillscopeError

    if sh.config.zoo:
        zoo = Zoo.load(sh.config.zoo)        # a named zoo that cannot be read is an error, not a skip
    else:
        found = [p for p in default_zoo_paths(sh.settings) if p.is_file()]
        if not found:
            return None, ("no zoo of independent models was found (looked in "
                          f"{', '.join(str(p) for p in default_zoo_paths(sh.settings))}); build one with "
                          "`distillscope zoo build` or pass --zoo")
        try:
            zoo = Zoo.load(found[0])
        except DistillscopeError as exc:
            return None, f"the zoo at {found[0]} cannot be used: {exc}"
    teacher, refs = _scorers(sh, zoo.dtype or "float32")
    try:
        sh.notes += zoo.check(teacher_fingerprint=teacher.loaded.fingerprint,
                              reference_fingerprints=[r.loaded.fingerprint for r in refs],
                              key_id=str(sh.scheme.config().get("key_id") or "") or None)
    except DistillscopeError:
        if sh.config.zoo:
            raise
        return None, (f"the default zoo was built for teacher {zoo.teacher} and references "
                      f"{', '.join(zoo.references)}, not for this audit's; build one with `distillscope audit zoo "
                      "build` or pass --zoo")
    return zoo, ""


def _passive_tests(models: dict[str, Suspect], sh: _Shared) -> dict[str, TestResult]:
    """Passive attribution of each model against the zoo (population null), on the zoo's prompts."""
    zoo, why = _zoo(sh)
    if zoo is not None and sh.config.zoo_prompts:
        zoo = zoo.restrict(sh.config.zoo_prompts)
    sh.zoo = zoo
    if zoo is None:
        return {role: TestResult("passive", "passive attribution against a zoo of independent models", "skipped",
                                 note=why) for role in models}
    teacher, refs = _scorers(sh)
    affinities: dict[str, list[float | None]] = {}
    out: dict[str, TestResult] = {}
    for role, model in models.items():
        answers = model.answer(list(zoo.prompts), max_new_tokens=zoo.max_new_tokens, temperature=zoo.temperature,
                               seed=zoo.seed, progress=sh.progress)
        if answers.prompts != zoo.prompts:
            out[role] = TestResult("passive", "passive attribution against a zoo of independent models", "skipped",
                                   note="the model's texts do not answer the zoo's prompts, so its statistic "
                                        "cannot be compared with the zoo's")
            continue
        affinities[role] = attribution.teacher_affinity(answers.prompts, answers.texts, teacher, refs,
                                                        progress=sh.progress, label=f"teacher affinity ({role})")
    for role, per in affinities.items():
        stat = mean_affinity(per)
        n = sum(v is not None for v in per)
        if n == 0:
            out[role] = TestResult("passive", "passive attribution against a zoo", "failed", note="no answers")
            continue
        cmp = zoo.compare(stat)
        details: dict[str, Any] = {"null": H0_ZOO, "rank": cmp.rank, "zoo_members": cmp.n_members,
                                   "smallest_possible_p": 1 / (cmp.n_members + 1), "lower_tail_p": cmp.lower_p,
                                   "effect_sd": cmp.effect, "zoo_min": cmp.zoo_min, "zoo_median": cmp.zoo_median,
                                   "zoo_max": cmp.zoo_max, "zoo_kinds": sorted({m.kind for m in zoo.members})}
        other = "control" if role == "suspect" else "suspect"
        pairs = [(a, b) for a, b in zip(per, affinities.get(other, ())) if a is not None and b is not None]
        if pairs:   # a description beside the zoo rank, never a p-value
            st = attribution.sign_test([a for a, _ in pairs], [b for _, b in pairs])
            details["more_teacher_like_than_" + other] = f"{st.positives} of {st.n} prompts"
        method = (f"conformal rank of the mean teacher affinity (log p_teacher − max over references "
                  f"{', '.join(sh.config.references)} of log p_ref, per character) on the zoo's {len(zoo.prompts)} "
                  f"prompts among {cmp.n_members} independent models; H0: {H0_ZOO}; corroboration only")
        out[role] = TestResult("passive", method, "ok", n, stat, "mean teacher affinity (nats/char)", cmp.p_value,
                               "", details)
    control = out.get("control")
    if control is not None and control.ran and control.details["lower_tail_p"] <= 1 / (control.details["zoo_members"] + 1):
        sh.notes.append(f"the control is less teacher-like than every model of the zoo (affinity "
                        f"{control.statistic:.3g} < zoo minimum {control.details['zoo_min']:.3g}): it resembles a "
                        "reference model, so any model would look teacher-like beside it; read the passive "
                        "test against the zoo, not against this control")
    return out


def _probe(model: Suspect, sh: _Shared) -> tuple[tuple[str, str], ...]:
    if not sh.config.identity_probes or isinstance(model, TextsSuspect):
        return ()
    ans = model.answer(list(attribution.IDENTITY_PROBES), max_new_tokens=48, temperature=0.0, seed=sh.config.seed)
    return tuple((q, (a or "")[:300]) for q, a in zip(ans.prompts, ans.texts))


def _cannot_read(model: Suspect) -> bool:
    """Reading mode is impossible (no weights): black-box is the fallback."""
    return not isinstance(model, LocalSuspect)


def _model_audit(role: str, spec: str, model: Suspect, sh: _Shared, answers: Answers | None,
                 passive: TestResult | None) -> ModelAudit:
    tests: list[TestResult] = []
    if "open" in sh.config.tests:
        tests.append(_open_test(model, sh))
    if answers is not None:
        tests.append(_blackbox_test(answers, sh))
    if passive is not None:
        tests.append(passive)
    comb = combine_audit({t.test: t.p_value for t in tests if t.ran})
    return ModelAudit(role, spec, model.name, model.fingerprint, tuple(tests), comb.p_value, comb.method,
                      _probe(model, sh))


def _identity_problems(models: dict[str, Suspect], sh: _Shared) -> list[str]:
    """A suspect that is our own teacher, a model that is a reference of the passive test: say so."""
    teacher_spec = sh.config.teacher or sh.settings.teacher
    teacher_fp = sh.scorers[0].loaded.fingerprint if sh.scorers else None
    ref_fps = {r.loaded.fingerprint: r.loaded.spec for r in sh.scorers[1]} if sh.scorers else {}
    out = []
    for role, m in models.items():
        if not isinstance(m, LocalSuspect):
            continue
        if m.spec.target == teacher_spec or (teacher_fp and m.fingerprint == teacher_fp):
            out.append(f"the {role} is our teacher itself ({teacher_spec}): the audit cannot tell a copy of our "
                       "weights from a model trained on our outputs; its p-values still test only H0")
        ref = ref_fps.get(m.fingerprint) or (m.spec.target if m.spec.target in sh.config.references else None)
        if ref:
            out.append(f"the {role} is the reference model {ref} of the passive test: its teacher affinity is "
                       "low by construction" + (", so comparing the suspect with it says nothing; the "
                                                "radioactivity tests and the zoo are unaffected" if role == "control"
                                                else ""))
    return out


def _corroboration(suspect: ModelAudit) -> str:
    t = suspect.test("passive")
    if t is None or not t.ran:
        return ""
    d = t.details
    return (f"Passive attribution (corroboration only, never part of the accusation; H0: {d['null']}): mean "
            f"teacher affinity {t.statistic:.3g} nats/char, rank {d['rank']} of {d['zoo_members'] + 1} in the zoo "
            f"(min {d['zoo_min']:.3g}, median {d['zoo_median']:.3g}, max {d['zoo_max']:.3g}), zoo p = "
            f"{t.p_value:.3g} (smallest possible {d['smallest_possible_p']:.3g}), effect {d['effect_sd']:+.2f} zoo "
            "standard deviations.")


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
        "zoo": None if sh.zoo is None else {"created": sh.zoo.created, "members": len(sh.zoo.members),
                                            "prompts": len(sh.zoo.prompts), "dtype": sh.zoo.dtype,
                                            "kinds": sorted({m.kind for m in sh.zoo.members})},
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
    needs_answers = "blackbox" in config.tests or (
        "open" in config.tests and any(_cannot_read(m) for m in models.values()))
    if needs_answers and not prompts and not all(isinstance(m, TextsSuspect) for m in models.values()):
        raise AuditError(f"no prompts for the black-box test: {config.corpus} names none",
                         hint="pass --prompts FILE")
    texts = tokenize_corpus(corpus, tokenizer)
    df = radioactivity.window_document_frequency([t.answer_ids for t in texts], scheme.context_width)
    sh = _Shared(config, settings, scheme, scheme.detector(tokenizer=tokenizer), tokenizer, corpus, prompts,
                 {w for w, c in df.items() if c >= config.min_window_df}, ensure_progress(progress),
                 dict(loaded or {}))
    check, problems = _corpus_check(sh)
    blackbox_answers: dict[str, Answers] = {}
    if needs_answers:
        for role, m in models.items():
            n = config.samples if not isinstance(m, TextsSuspect) else 1
            draws = [m.answer(prompts, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                              seed=config.seed + i, progress=sh.progress) for i in range(n)]
            blackbox_answers[role] = Answers(tuple(q for d in draws for q in d.prompts),
                                             tuple(t for d in draws for t in d.texts))
    passive = _passive_tests(models, sh) if "passive" in config.tests else {}
    audits = {role: _model_audit(role, getattr(config, role), m, sh, blackbox_answers.get(role), passive.get(role))
              for role, m in models.items()}
    problems += _identity_problems(models, sh) + sh.notes
    for role, a in audits.items():
        problems += [f"{role}: {t.test} test skipped: {t.note}" for t in a.tests if t.status == "skipped"]
    verdict = decide(audits["suspect"], audits["control"], alpha=config.alpha, control_alpha=config.control_alpha,
                     gamma=_gamma(scheme), weak_alpha=config.weak_alpha, problems=problems,
                     corroboration=_corroboration(audits["suspect"]))
    logger.info("audit verdict: %s (suspect p=%.3g, control p=%.3g)", verdict.label, verdict.suspect_p,
                verdict.control_p)
    return AuditResult(verdict, audits["suspect"], audits["control"], _reproducibility(config, sh, audits, command),
                       LIMITATIONS, check)
