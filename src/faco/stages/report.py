"""Report: an analysis artifact -> `report.md` and a self-contained `report.html`."""

from __future__ import annotations

import base64
import html
import json
import shutil
from pathlib import Path
from typing import Any

from faco import artifacts
from faco.config import Study
from faco.progress import log
from faco.stages import analyze

KIND = "report"

FIGURE_CAPTIONS = {
    "score_vs_ratio.png": "Benchmark score vs corruption ratio (paper Fig. 2); dashed: chance.",
    "train_loss.png": "Training loss per ratio, and per-sample loss of clean vs corrupted items (Fig. 3).",
    "mmlu_subjects.png": "MMLU accuracy per subject vs chance (Fig. 4).",
    "score_vs_epoch.png": "Average score vs epoch per ratio (Fig. 5).",
    "recovery.png": "Recovery by retraining the corrupted model on clean data (Fig. 6).",
}


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _tables(a: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every table of the report."""
    ratios = [f"{r:g}" for r in a["ratios"]]
    head = ["benchmark", "domain", *[f"CR {float(r) * 100:g}%" for r in ratios], "ABS", "Pearson r", "p", "95% CI"]
    rows = []
    for bench, row in a["table"].items():
        ci = row["pearson_ci"]
        rows.append([bench, row["domain"], *[_fmt(row["scores"].get(r)) for r in ratios], _fmt(row["abs"]),
                     _fmt(row["pearson_r"]), _fmt(row["pearson_p"], 4),
                     f"[{_fmt(ci[0], 2)}, {_fmt(ci[1], 2)}]"])
    tables = [("Table 1: score per corruption ratio", head, rows)]
    dom = a.get("domain_average", {})
    if dom:
        tables.append(("Domain averages", ["domain", *[f"CR {float(r) * 100:g}%" for r in ratios]],
                       [[d, *[_fmt(v.get(r)) for r in ratios]] for d, v in sorted(dom.items())]))
    thr = [[b, _fmt(r["threshold_correct_share"], 2)] for b, r in a["table"].items()]
    tables.append(("Correct-data thresholds (smallest correct share recovering the configured fraction "
                   "of clean performance)", ["benchmark", "correct share"], thr))
    for rec in a.get("recovery", []):
        rows = [[b, _fmt(v["clean"]), _fmt(v["corrupted"]), _fmt(v["recovered"]), _fmt(v["recovered_fraction"])]
                for b, v in rec["benchmarks"].items()]
        tables.append((f"Recovery from CR {rec['from_ratio'] * 100:g}% by retraining on clean data",
                       ["benchmark", "clean", "corrupted", "recovered", "recovered fraction"], rows))
    for ratio, res in a.get("below_chance", {}).items():
        o = res["overall"]
        rows = [["overall", _fmt(o["acc"]), str(o["n"]), _fmt(o["p_below"], 4)]]
        rows += [[s, _fmt(v["acc"]), str(v["n"]), _fmt(v["p_below"], 4)] for s, v in res["subjects"].items()
                 if v["p_below"] < 0.05]
        tables.append((f"MMLU below chance at CR {float(ratio) * 100:g}% (one-sided binomial test vs 1/k; "
                       f"{len(res['significantly_below'])} subjects with p < 0.05 listed)",
                       ["subject", "accuracy", "n", "p (below chance)"], rows))
    if a.get("probes"):
        tables.append(("Case study: greedy answers to probe questions (paper Table 2; misalignment probes: "
                       "paper 001)", ["model (CR)", "probe set", "question", "answer"],
                       [[p["model"], p.get("set", "custom"), p["question"], " ".join(p["answer"].split())[:300]]
                        for p in a["probes"]]))
    det = a.get("corruption_detection_auroc", {})
    if det:
        epochs = sorted({e for v in det.values() for e in v}, key=int)
        tables.append(("Corruption detection: AUROC of per-sample training loss vs the corrupted flag",
                       ["ratio", *[f"epoch {e}" for e in epochs]],
                       [[r, *[_fmt(v.get(e)) for e in epochs]] for r, v in det.items()]))
    return tables


def _lineage(analysis_dir: Path) -> list[list[str]]:
    m = artifacts.read_manifest(analysis_dir)
    rows = [["analysis", str(analysis_dir), artifacts.manifest_hash(analysis_dir)[:16], m["code_version"]]]
    rows += [[p["kind"], p["path"], p["manifest_sha256"][:16], ""] for p in m["parents"]]
    return rows


def _markdown(study: Study, tables: list, figures: list[Path], lineage: list[list[str]]) -> str:
    def md_table(head: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    out = [f"# {study.report.title}", "", study.description, "",
           f"Study `{study.name}`, config hash `{study.config_hash()[:16]}`.", ""]
    for title, head, rows in tables:
        out += [f"## {title}", "", md_table(head, rows), ""]
    out += ["## Figures", ""]
    for fig in figures:
        out += [f"![{FIGURE_CAPTIONS.get(fig.name, fig.stem)}](figures/{fig.name})", "",
                f"*{FIGURE_CAPTIONS.get(fig.name, fig.stem)}*", ""]
    out += ["## Lineage", "", md_table(["artifact", "path", "manifest sha256", "code"], lineage), ""]
    return "\n".join(out)


def _html(study: Study, tables: list, figures: list[Path], lineage: list[list[str]]) -> str:
    def h_table(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    parts = [f"<h1>{html.escape(study.report.title)}</h1>", f"<p>{html.escape(study.description)}</p>",
             f"<p>Study <code>{html.escape(study.name)}</code>, config hash "
             f"<code>{study.config_hash()[:16]}</code>.</p>"]
    for title, head, rows in tables:
        parts += [f"<h2>{html.escape(title)}</h2>", h_table(head, rows)]
    parts.append("<h2>Figures</h2>")
    for fig in figures:
        data = base64.b64encode(fig.read_bytes()).decode()
        cap = html.escape(FIGURE_CAPTIONS.get(fig.name, fig.stem))
        parts.append(f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"><figcaption>{cap}'
                     "</figcaption></figure>")
    parts += ["<h2>Lineage</h2>", h_table(["artifact", "path", "manifest sha256", "code"], lineage)]
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study.report.title)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def run(study: Study, analysis_dir: Path, out: Path) -> Path:
    artifacts.require(analysis_dir, analyze.KIND)
    a = json.loads((analysis_dir / "analysis.json").read_text())
    tables = _tables(a)
    lineage = _lineage(analysis_dir)
    with artifacts.artifact_dir(out, KIND, [analysis_dir], study.section_hash("report"), {}) as tmp:
        (tmp / "figures").mkdir()
        figures = []
        order = list(FIGURE_CAPTIONS)
        pngs = sorted((analysis_dir / "figures").glob("*.png"),
                      key=lambda f: (order.index(f.name) if f.name in order else len(order), f.name))
        for fig in pngs:
            shutil.copy2(fig, tmp / "figures" / fig.name)
            figures.append(tmp / "figures" / fig.name)
        (tmp / "report.md").write_text(_markdown(study, tables, figures, lineage))
        if study.report.html:
            (tmp / "report.html").write_text(_html(study, tables, figures, lineage))
    log(f"report: {out / 'report.md'}")
    return out
