"""Distribution test: a kernel MMD between an account's requests and benign traffic.

After the MMD detector of Liu et al. (2026) and PRADA (Juuti et al., 2019): instead of asking
whether one summary of an account is extreme, ask whether the *distribution* of its requests
differs from benign traffic. Each request becomes a small vector ``x`` (by default: reasoning
elicitation, logprob use, ``ln`` max_tokens, ``ln`` completion and prompt length, hour of day;
optionally the topic embedding), mapped by random Fourier features of an RBF kernel
``k(x, y) = exp(-|x - y|^2 / (2 bandwidth^2))``:

    phi(x) = sqrt(2 / D) * cos(W x + b),   W ~ N(0, I / bandwidth^2),   b ~ U(0, 2 pi)

so that ``phi(x) . phi(y)`` approximates ``k(x, y)`` (Rahimi & Recht 2007) and the squared MMD
between two request samples is the squared distance of their mean embeddings. The per-entity
means are plain aggregates, one SQL text run by DuckDB and Spark (:func:`distribution_sql`).
The squared MMD between entity ``a`` and a benign reference account ``b`` is taken in its
unbiased form, which removes the ``1/n`` self-similarity terms (``n`` = requests):

    MMD^2(a, b) = |m_a|^2_u + |m_b|^2_u - 2 m_a . m_b,   |m|^2_u = (n^2 |m|^2 - sum_i |phi(x_i)|^2) / (n (n - 1))

Benign traffic is a mixture of narrow per-user distributions (one user, a few sessions, a few
hours, one max_tokens habit), so an account is compared with the benign accounts it resembles
most, not with the pooled mixture that every narrow benign user differs from: the statistic is
the mean MMD^2 to its ``neighbours`` nearest benign reference accounts (the reference accounts
themselves are scored leave-one-out). Requests of one account are not independent and the
statistic depends on volume, so the scorer turns it into an empirical p-value against benign
reference accounts of similar volume, like every other feature (:mod:`.scoring`): the threshold
comes from benign data only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from distillscope.errors import TrafficError
from distillscope.traffic.features import FeatureQuery, entity_source_sql
from distillscope.traffic.prepare import EMBED_COLUMNS

#: Name and meaning of the distribution statistic among the scored features (direction: high).
DISTRIBUTION_FEATURE = "mmd"
DISTRIBUTION_MEANING = ("kernel MMD^2 of the request distribution against the nearest benign reference accounts "
                        "(distribution test)")

_HOUR = 2 * math.pi / 24
#: Per-request inputs of the embedding: name -> SQL expressions (one per dimension), each of
#: roughly unit scale. A request with any input NULL is left out (no evidence from missing data);
#: an absent max_tokens or logprobs parameter means "not requested" (0).
INPUTS: dict[str, tuple[str, ...]] = {
    "cot": ("CAST(cot AS DOUBLE)",),
    "logprobs": ("CASE WHEN logprobs > 0 THEN CAST(1 AS DOUBLE) ELSE CAST(0 AS DOUBLE) END",),
    "max_tokens": ("LN(1 + CAST(COALESCE(max_tokens, 0) AS DOUBLE)) / 4",),
    "completion_tokens": ("LN(1 + CAST(completion_tokens AS DOUBLE)) / 4",),
    "prompt_tokens": ("LN(1 + CAST(prompt_tokens AS DOUBLE)) / 4",),
    "hour": (f"COS(CAST(hour AS DOUBLE) * {_HOUR:.17e})", f"SIN(CAST(hour AS DOUBLE) * {_HOUR:.17e})"),
    "topic": tuple(f"CAST({c} AS DOUBLE)" for c in EMBED_COLUMNS),
}


@dataclass(frozen=True)
class DistributionConfig:
    """Settings of the distribution test.

    inputs: per-request inputs (keys of :data:`INPUTS`; default how a request is asked:
    cot, logprobs, max_tokens, completion_tokens, prompt_tokens, hour). ``topic`` adds the
    16-dimensional topic embedding; it is off by default because benign users and distillers ask
    about the same topics -- a sweep across every topic even resembles the pooled benign mix.
    n_features: random Fourier features D (64). bandwidth: RBF kernel width in input units (1.0).
    seed: of the random features (20260201). min_rows: fewer usable requests give no statistic (5).
    neighbours: the statistic is the mean squared MMD to this many nearest benign reference accounts (3).
    """

    inputs: tuple[str, ...] = ("cot", "logprobs", "max_tokens", "completion_tokens", "prompt_tokens", "hour")
    n_features: int = 64
    bandwidth: float = 1.0
    seed: int = 20_260_201
    min_rows: int = 5
    neighbours: int = 3

    def __post_init__(self) -> None:
        unknown = [i for i in self.inputs if i not in INPUTS]
        if unknown or not self.inputs:
            raise TrafficError(f"unknown distribution inputs {unknown or '(none)'}",
                               hint=f"choose from {', '.join(INPUTS)}")
        if self.n_features < 1 or self.bandwidth <= 0 or self.min_rows < 2 or self.neighbours < 1:
            raise TrafficError(f"invalid distribution config n_features={self.n_features} "
                               f"bandwidth={self.bandwidth} min_rows={self.min_rows} neighbours={self.neighbours}",
                               hint="n_features >= 1, bandwidth > 0, min_rows >= 2, neighbours >= 1 "
                                    "(e.g. 64, 1.0, 5, 3)")

    @property
    def expressions(self) -> tuple[str, ...]:
        return tuple(e for name in self.inputs for e in INPUTS[name])

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(name if len(INPUTS[name]) == 1 else f"{name}{j}"
                     for name in self.inputs for j in range(len(INPUTS[name])))


@dataclass(frozen=True)
class RandomFeatures:
    """The random Fourier features: ``weights`` (D x d) and ``offsets`` (D)."""

    weights: tuple[tuple[float, ...], ...]
    offsets: tuple[float, ...]

    @classmethod
    def draw(cls, config: DistributionConfig) -> "RandomFeatures":
        rng = np.random.default_rng(config.seed)
        d = len(config.expressions)
        w = rng.normal(0.0, 1.0 / config.bandwidth, size=(config.n_features, d))
        b = rng.uniform(0.0, 2 * math.pi, size=config.n_features)
        return cls(tuple(tuple(float(v) for v in row) for row in w), tuple(float(v) for v in b))


def _lit(v: float) -> str:
    # Exponent notation: a DOUBLE literal on DuckDB and on Spark (plain decimals are DECIMAL on Spark).
    return f"{v:.17e}"


def distribution_sql(rff: RandomFeatures, config: DistributionConfig, entity: str = "account_id",
                     window: int = 150) -> FeatureQuery:
    """Per entity: usable requests ``n_mmd``, mean random features ``phi0..``, mean ``sum_j cos^2`` ``phi_sq``
    and the mean of every input dimension ``x0..`` (for evidence). Same tables as the feature SQL."""
    exprs = config.expressions
    xs = ", ".join(f"{e} AS x{i}" for i, e in enumerate(exprs))
    not_null = " AND ".join(f"x{i} IS NOT NULL" for i in range(len(exprs)))
    cos = ", ".join(
        "COS(" + " + ".join(f"{_lit(w)} * x{i}" for i, w in enumerate(row)) + f" + {_lit(b)}) AS c{j}"
        for j, (row, b) in enumerate(zip(rff.weights, rff.offsets)))
    keep = ", ".join(f"x{i}" for i in range(len(exprs)))
    means = ", ".join(f"AVG(c{j}) AS phi{j}" for j in range(len(rff.offsets)))
    sq = " + ".join(f"c{j} * c{j}" for j in range(len(rff.offsets)))
    x_means = ", ".join(f"AVG(x{i}) AS x{i}" for i in range(len(exprs)))
    sql = f"""
WITH src AS ({entity_source_sql(entity, window)}),
x AS (SELECT entity, {xs} FROM src),
c AS (SELECT entity, {keep}, {cos} FROM x WHERE {not_null})
SELECT entity AS {entity}, COUNT(*) AS n_mmd, {means}, AVG({sq}) AS phi_sq, {x_means}
FROM c GROUP BY entity ORDER BY {entity}
"""
    return FeatureQuery(f"{entity.split('_')[0]}_distribution", sql)


@dataclass(frozen=True)
class DistributionReference:
    """The benign side of the test: config, random features, the mean embedding of every benign
    reference account (``embeddings``, with its unbiased squared norm ``norms``) and the benign
    mean of every input dimension (for evidence)."""

    config: DistributionConfig
    features: RandomFeatures
    embeddings: tuple[tuple[float, ...], ...]
    norms: tuple[float, ...]
    input_means: tuple[float, ...]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["config"]["inputs"] = list(self.config.inputs)
        return data

    @cached_property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings, unbiased squared norms) as arrays (parsed once)."""
        return np.asarray(self.embeddings, dtype=float), np.asarray(self.norms, dtype=float)

    def statistic(self, m: np.ndarray, norm_u: float) -> float:
        """Mean squared MMD of one entity (mean embedding ``m``, unbiased squared norm) to its nearest
        reference accounts."""
        rm, rnorm = self.arrays
        d2 = norm_u + rnorm - 2 * (rm @ m)
        k = self.config.neighbours
        return float(np.sort(np.partition(d2, k - 1)[:k]).mean())

    @classmethod
    def from_dict(cls, data: dict) -> "DistributionReference":
        cfg = dict(data["config"], inputs=tuple(data["config"]["inputs"]))
        rff = RandomFeatures(tuple(tuple(r) for r in data["features"]["weights"]), tuple(data["features"]["offsets"]))
        return cls(DistributionConfig(**cfg), rff, tuple(tuple(r) for r in data["embeddings"]), tuple(data["norms"]),
                   tuple(data["input_means"]))


def _embedding(frame: pd.DataFrame, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean embeddings ``m`` (rows x D), unbiased squared norms and row counts of distribution_sql output."""
    n = frame.n_mmd.to_numpy(dtype=float)
    m = math.sqrt(2.0 / d) * frame[[f"phi{j}" for j in range(d)]].to_numpy(dtype=float)
    sq = (2.0 / d) * frame.phi_sq.to_numpy(dtype=float)             # mean |phi(x_i)|^2
    with np.errstate(divide="ignore", invalid="ignore"):
        norms = (n * n * (m * m).sum(axis=1) - n * sq) / (n * (n - 1))
    return m, norms, n


def fit_reference(benign: pd.DataFrame, config: DistributionConfig, rff: RandomFeatures) -> DistributionReference:
    """The benign reference from the per-account output of :func:`distribution_sql` on benign traffic."""
    usable = benign[benign.n_mmd >= config.min_rows]
    if len(usable) <= config.neighbours:
        raise TrafficError(f"the benign reference has only {len(usable)} accounts with {config.min_rows}+ usable "
                           f"requests; the distribution test needs more than {config.neighbours}",
                           hint="calibrate on a log with more benign accounts (better 1000+)")
    m, norms, _ = _embedding(usable, config.n_features)
    x = usable[[f"x{i}" for i in range(len(config.expressions))]].to_numpy(dtype=float)
    return DistributionReference(config, rff, tuple(tuple(round(float(v), 9) for v in row) for row in m),
                                 tuple(float(v) for v in norms), tuple(x.mean(axis=0).tolist()))


def mmd_statistic(frame: pd.DataFrame, ref: DistributionReference, *, leave_one_out: bool = False,
                  chunk: int = 2048) -> np.ndarray:
    """Per entity, the mean unbiased squared MMD to its ``neighbours`` nearest benign reference accounts
    (NaN below ``min_rows`` usable requests). ``leave_one_out``: the rows *are* the reference accounts,
    in order, and each one's own row is skipped (how the calibration scores the reference itself)."""
    if frame.empty:
        return np.zeros(0)
    m, norms, n = _embedding(frame, ref.config.n_features)
    rm, rnorm = ref.arrays
    k = ref.config.neighbours
    out = np.full(len(frame), np.nan)
    ok = np.flatnonzero(n >= ref.config.min_rows)
    if leave_one_out and len(ok) != len(rm):
        raise TrafficError("leave-one-out needs exactly the reference accounts", hint="internal use by calibrate")
    for lo in range(0, len(ok), chunk):
        rows = ok[lo: lo + chunk]
        d2 = norms[rows, None] + rnorm[None, :] - 2 * m[rows] @ rm.T
        if leave_one_out:
            d2[np.arange(len(rows)), rows] = np.inf
        out[rows] = np.sort(np.partition(d2, k - 1, axis=1)[:, :k], axis=1).mean(axis=1)
    return out


def input_shifts(row: pd.Series, ref: DistributionReference, top: int = 3) -> str:
    """The inputs whose mean differs most from benign traffic, e.g. ``max_tokens 2.08 vs 1.10``."""
    names = ref.config.dimension_names
    cols = [f"mmd_x{i}" for i in range(len(names))]
    diffs = [(abs(float(row[c]) - ref.input_means[i]), names[i], float(row[c]), ref.input_means[i])
             for i, c in enumerate(cols) if c in row and pd.notna(row[c])]
    diffs.sort(reverse=True)
    return ", ".join(f"{name} {v:.2f} vs {b:.2f}" for _, name, v, b in diffs[:top])


@dataclass(frozen=True)
class DistributionInputs:
    """Per-entity output of :func:`distribution_sql` for accounts and campaigns of one log."""

    accounts: pd.DataFrame = field(repr=False)
    campaigns: pd.DataFrame = field(repr=False)


def attach(features: pd.DataFrame, inputs: pd.DataFrame, ref: DistributionReference, key: str, *,
           leave_one_out: bool = False) -> pd.DataFrame:
    """``features`` with the ``mmd`` column (NaN where the entity has no usable requests) and the input
    means ``mmd_x0..``. ``leave_one_out``: ``inputs`` are the reference accounts themselves."""
    out = features.drop(columns=[DISTRIBUTION_FEATURE], errors="ignore")
    if inputs.empty:
        return out.assign(**{DISTRIBUTION_FEATURE: np.nan})
    if leave_one_out:
        inputs = inputs[inputs.n_mmd >= ref.config.min_rows]
    stats = pd.DataFrame({key: inputs[key].to_numpy(),
                          DISTRIBUTION_FEATURE: mmd_statistic(inputs, ref, leave_one_out=leave_one_out)})
    x_cols = [f"x{i}" for i in range(len(ref.config.expressions))]
    stats = stats.join(inputs[x_cols].reset_index(drop=True).add_prefix("mmd_"))
    return out.merge(stats, on=key, how="left")
