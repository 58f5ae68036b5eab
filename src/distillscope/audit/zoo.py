"""The population null of passive attribution: a zoo of models known to be independent of us.

Passive attribution asks whether a suspect's answers are unusually teacher-like. "Unusually" needs
a population: the zoo, models of several families trained on several independent data sources
(and the reference model, its students, partial fine-tunes), each scored once on the zoo's fixed
prompts with the statistic of :mod:`distillscope.audit.attribution` (mean teacher affinity).

Null hypothesis of the zoo p-value (stated exactly, and the only one it speaks to):
H0_zoo: the suspect's mean teacher affinity on the zoo prompts is exchangeable with those of the
zoo's members. The conformal p-value ``(1 + #{members with affinity ≥ suspect's}) / (n + 1)`` is then
valid (P(p ≤ u) ≤ u); its smallest possible value is ``1 / (n + 1)``, so with a zoo of tens of
models it can corroborate but never convict — which is why it never enters the accusation
(:mod:`distillscope.audit.combine`). A suspect from a population unlike the zoo (a much stronger,
instruction-tuned model, say) can be more teacher-like than every member without having seen our
outputs: the report says so.

A zoo is built once (``distillscope zoo build``), cached as JSON, and is only valid for the
teacher, reference models, prompts and sampling it was built with: :meth:`Zoo.check` refuses the
rest with a clear message.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from distillscope.errors import AuditError

logger = logging.getLogger(__name__)

ZOO_FORMAT = "distillscope-audit-zoo"
ZOO_VERSION = 1
MIN_MEMBERS = 5

H0_ZOO = ("the suspect's mean teacher affinity on the zoo prompts is exchangeable with those of the zoo's "
          "independent models")


@dataclass(frozen=True)
class ZooMember:
    """One independent model of the zoo and its statistic on the zoo prompts."""

    name: str
    kind: str             # reference | scratch | reference-student | fine-tune | user
    family: str           # architecture (llama, gpt2, gpt_neox, gemma3, ...)
    source: str           # the data it was trained on
    fingerprint: str
    affinity: float       # mean teacher affinity (nats per character)
    per_prompt: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class ZooComparison:
    """Where one model's affinity falls in the zoo."""

    p_value: float        # conformal upper-tail p-value (H0_ZOO)
    lower_p: float        # the same for the lower tail: small = less teacher-like than the zoo
    rank: int             # 1 + members at least as teacher-like
    n_members: int
    effect: float         # (affinity − zoo mean) / zoo standard deviation
    zoo_min: float
    zoo_median: float
    zoo_max: float


@dataclass(frozen=True)
class Zoo:
    """A built zoo: what it is valid for, and its members."""

    teacher: str
    teacher_fingerprint: str
    references: tuple[str, ...]
    reference_fingerprints: tuple[str, ...]
    prompts: tuple[str, ...]
    max_new_tokens: int
    temperature: float
    seed: int
    dtype: str
    members: tuple[ZooMember, ...]
    key_id: str | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    format: str = ZOO_FORMAT
    version: int = ZOO_VERSION

    def affinities(self) -> list[float]:
        return [m.affinity for m in self.members]

    def restrict(self, n_prompts: int) -> "Zoo":
        """The same zoo on its first ``n_prompts`` prompts: every member's statistic recomputed from its
        per-prompt affinities, so a cheaper audit stays exchangeable with the zoo."""
        if n_prompts >= len(self.prompts):
            return self
        if n_prompts < 1:
            raise AuditError(f"a zoo needs at least one prompt, not {n_prompts}", hint="pass a positive number")
        members = tuple(ZooMember(m.name, m.kind, m.family, m.source, m.fingerprint,
                                  mean_affinity(m.per_prompt[:n_prompts]), tuple(m.per_prompt[:n_prompts]))
                        for m in self.members if len(m.per_prompt) >= n_prompts)
        return Zoo(**{**self.__dict__, "prompts": self.prompts[:n_prompts], "members": members})

    def compare(self, affinity: float) -> ZooComparison:
        """Conformal p-values of ``affinity`` against the members (module docstring)."""
        values = self.affinities()
        n = len(values)
        if n == 0:
            raise AuditError("the zoo has no members", hint="rebuild it: distillscope zoo build")
        above = sum(v >= affinity for v in values)
        below = sum(v <= affinity for v in values)
        sd = statistics.pstdev(values) if n > 1 else 0.0
        effect = (affinity - statistics.fmean(values)) / sd if sd > 0 else 0.0
        return ZooComparison((1 + above) / (n + 1), (1 + below) / (n + 1), 1 + above, n, effect, min(values),
                             statistics.median(values), max(values))

    def check(self, *, teacher_fingerprint: str, reference_fingerprints: Sequence[str],
              key_id: str | None) -> list[str]:
        """Refuse a zoo built for another teacher or other reference models (the statistic would not be
        the same); return notes for what does not invalidate it but a reader should know."""
        def fail(what: str) -> None:
            raise AuditError(f"the zoo was built {what}: its p-values do not apply to this audit",
                             hint="rebuild it for this audit: distillscope zoo build --out ZOO.json")

        if self.teacher_fingerprint != teacher_fingerprint:
            fail(f"for another teacher ({self.teacher}, fingerprint {self.teacher_fingerprint[:12]} ≠ "
                 f"{teacher_fingerprint[:12]})")
        if tuple(self.reference_fingerprints) != tuple(reference_fingerprints):
            fail(f"with other reference models ({', '.join(self.references)})")
        if len(self.members) < MIN_MEMBERS:
            fail(f"with only {len(self.members)} members (at least {MIN_MEMBERS} are needed)")
        notes = []
        if self.key_id and key_id and self.key_id != key_id:
            notes.append(f"the zoo was built under watermark key id {self.key_id}, this audit uses {key_id}: its "
                         "members are independent models only if none of them was trained on text watermarked "
                         f"with either key")
        return notes

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Zoo":
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AuditError(f"no zoo at {p}", hint="build one: distillscope zoo build --out "
                                                    f"{p}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise AuditError(f"zoo {p} cannot be read ({exc})", hint="rebuild it: distillscope zoo build") \
                from None
        if not isinstance(raw, dict) or raw.get("format") != ZOO_FORMAT:
            raise AuditError(f"{p} is not a distillscope zoo", hint="pass the JSON written by distillscope zoo build")
        if raw.get("version") != ZOO_VERSION:
            raise AuditError(f"zoo {p} has format version {raw.get('version')}, this distillscope reads "
                             f"{ZOO_VERSION}", hint="rebuild it with this version: distillscope zoo build")
        try:
            members = tuple(ZooMember(**{**m, "per_prompt": tuple(m.get("per_prompt", ()))}) for m in raw["members"])
            return cls(**{**raw, "members": members, "prompts": tuple(raw["prompts"]),
                          "references": tuple(raw["references"]),
                          "reference_fingerprints": tuple(raw["reference_fingerprints"])})
        except (KeyError, TypeError) as exc:
            raise AuditError(f"zoo {p} is malformed ({exc})", hint="rebuild it: distillscope zoo build") from None


def mean_affinity(values: Sequence[float | None]) -> float:
    """The zoo statistic: mean teacher affinity over the prompts that got an answer (NaN if none)."""
    clean = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(clean) if clean else float("nan")


@dataclass(frozen=True)
class ZooCandidate:
    """A model to add to a zoo: a suspect spec (``local:``/``endpoint:``) and what it is."""

    spec: str
    kind: str = "user"
    family: str = ""
    source: str = ""
    name: str = ""


def score_member(candidate: ZooCandidate, *, prompts: Sequence[str], scorers: tuple[Any, Sequence[Any]],
                 max_new_tokens: int, temperature: float, seed: int, settings: Any = None,
                 progress: Any = None) -> ZooMember:
    """Let one candidate answer the zoo prompts and compute its statistic."""
    from distillscope.audit.access import LocalSuspect, open_suspect
    from distillscope.audit.attribution import teacher_affinity

    model = open_suspect(candidate.spec, settings=settings, progress=progress)
    answers = model.answer(list(prompts), max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                           progress=progress)
    teacher, refs = scorers
    per = teacher_affinity(answers.prompts, answers.texts, teacher, refs, progress=progress,
                           label=f"teacher affinity ({candidate.name or model.name})")
    family = candidate.family
    if not family and isinstance(model, LocalSuspect):
        family = str(getattr(model.loaded.model.config, "model_type", ""))
    return ZooMember(candidate.name or model.name, candidate.kind, family, candidate.source, model.fingerprint,
                     mean_affinity(per), tuple(per))


def build_zoo(candidates: Sequence[ZooCandidate], *, prompts: Sequence[str], teacher_loaded: Any,
              reference_loaded: Sequence[Any], max_new_tokens: int = 48, temperature: float = 0.7, seed: int = 0,
              key_id: str | None = None, settings: Any = None, progress: Any = None) -> Zoo:
    """Score every candidate on ``prompts`` and return the zoo (save it with :meth:`Zoo.save`)."""
    from distillscope.audit.attribution import LikelihoodScorer

    if not prompts:
        raise AuditError("a zoo needs prompts", hint="pass at least a few dozen prompts")
    scorers = (LikelihoodScorer(teacher_loaded), tuple(LikelihoodScorer(r) for r in reference_loaded))
    members = []
    for cand in candidates:
        member = score_member(cand, prompts=prompts, scorers=scorers, max_new_tokens=max_new_tokens,
                              temperature=temperature, seed=seed, settings=settings, progress=progress)
        if not math.isfinite(member.affinity):
            logger.warning("zoo candidate %s gave no answer; left out", cand.spec)
            continue
        logger.info("zoo member %s: affinity %.4f", member.name, member.affinity)
        members.append(member)
    return Zoo(teacher=teacher_loaded.spec, teacher_fingerprint=teacher_loaded.fingerprint,
               references=tuple(r.spec for r in reference_loaded),
               reference_fingerprints=tuple(r.fingerprint for r in reference_loaded), prompts=tuple(prompts),
               max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
               dtype=str(getattr(teacher_loaded, "dtype", "")).replace("torch.", ""), members=tuple(members),
               key_id=key_id)
