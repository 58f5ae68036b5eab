"""The evidence report: one self-contained HTML file (jinja2, inline SVG, no scripts) plus JSON.

The JSON holds every number of the HTML. Neither ever contains the watermark key: only its id
(the scheme's ``config()``), which is safe to publish.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from distillscope.audit.plots import green_histogram, pvalue_curves
from distillscope.audit.results import TEST_NAMES, TEST_TITLES, AuditResult
from distillscope.errors import AuditError

logger = logging.getLogger(__name__)


def result_to_dict(result: AuditResult) -> dict[str, Any]:
    """The JSON form of a result (everything the HTML shows, and the curves behind the plots)."""
    out = asdict(result)
    out["format"] = "distillscope-audit-report"
    out["version"] = 1
    return out


def _fmt_p(p: float) -> str:
    return "—" if p is None else (f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}")


def _rows(result: AuditResult) -> list[dict[str, Any]]:
    rows = []
    for name in TEST_NAMES:
        s, c = result.suspect.test(name), result.control.test(name)
        if s is None and c is None:
            continue
        rows.append({"name": name, "title": TEST_TITLES[name], "method": (s or c).method, "suspect": s, "control": c})
    return rows


def _gamma(result: AuditResult) -> float | None:
    wm = result.reproducibility.get("watermark", {})
    return float(wm["gamma"]) if "gamma" in wm and wm.get("scheme") != "gumbel" else None


def render_html(result: AuditResult) -> str:
    """The report as one HTML string."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("distillscope.audit", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    env.filters["p"] = _fmt_p
    env.filters["num"] = lambda x: f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else str(x)
    template = env.get_template("report.html.j2")
    return template.render(
        r=result, rows=_rows(result), curves_svg=pvalue_curves(result),
        histogram_svg=green_histogram(result, _gamma(result)),
        reproducibility_json=json.dumps(result.reproducibility, indent=2, sort_keys=True, default=str),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def write_report(result: AuditResult, path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` (HTML) and the JSON beside it (same name, ``.json``); return both paths."""
    html_path = Path(path)
    json_path = html_path.with_suffix(".json")
    if html_path.suffix.lower() == ".json":
        raise AuditError(f"report path {html_path} ends in .json", hint="pass the HTML path, e.g. --report out.html; "
                         "the JSON is written beside it")
    try:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(result), encoding="utf-8")
        json_path.write_text(json.dumps(result_to_dict(result), indent=2, default=str), encoding="utf-8")
    except OSError as exc:
        raise AuditError(f"cannot write the report to {html_path}: {exc.strerror}",
                         hint="choose a writable path for --report") from None
    logger.info("audit report written to %s and %s", html_path, json_path)
    return html_path, json_path
