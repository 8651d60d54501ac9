"""Report: an analysis artifact -> `report.md` and a self-contained `report.html`."""

from __future__ import annotations

import base64
import html
import shutil
from pathlib import Path

from faco import artifact_kinds, artifacts
from faco.analysis import schema
from faco.analysis.schema import KindsAnalysis, StudyAnalysis
from faco.analysis.tables import Table, kinds_tables, study_tables
from faco.config import Study
from faco.progress import debug, log

FINDINGS = "findings.txt"

FIGURE_CAPTIONS = {
    "score_vs_ratio.png": "Benchmark score vs corruption ratio with 95% item-bootstrap CIs (paper Fig. 2); "
                          "dashed: chance; dotted green: the untrained base model.",
    "train_loss.png": "Training loss per ratio, and per-sample loss of clean vs corrupted items (Fig. 3).",
    "mmlu_subjects.png": "MMLU accuracy per subject vs chance, base model as green crosses (Fig. 4).",
    "score_vs_epoch.png": "Average score vs epoch per ratio, base model dotted (Fig. 5).",
    "recovery.png": "Recovery by retraining the corrupted model on clean data, base model dotted (Fig. 6).",
    "detectors.png": "Detectors of corrupted samples: AUROC at the end of training with 95% bootstrap CIs, per "
                     "ratio; chance dashed (docs/audit.md).",
    "cleaning.png": "Retraining after removing rows: the corrupted model, detector-cleaned, random removal and "
                    "oracle removal, 95% item-bootstrap CIs.",
}


#: how a finding's id reads in the report (F1..F4 read as they are)
_LABELS = {"spread": "Spread", "detection": "Detectors", "cleaning": "Cleaning"}


def _caption(name: str) -> str:
    """A figure's caption; `<kind>-<name>` is that figure of one kind's family."""
    kind, _, rest = name.partition("-")
    if name not in FIGURE_CAPTIONS and rest in FIGURE_CAPTIONS:
        return f"{kind} false chains: {FIGURE_CAPTIONS[rest]}"
    return FIGURE_CAPTIONS.get(name, Path(name).stem)


def _kind_findings(a: KindsAnalysis) -> list[str]:
    """The Findings of a study of several kinds: what is shared, thresholds and misalignment across
    kinds, then every kind's own findings prefixed with the kind."""
    out = [f"**Kinds.** Kinds of false chain compared: {', '.join(a.kinds)}. Every kind's pairs share the ids and the "
           "true chains, and a ratio corrupts the same items in every kind. CR 0% is one clean model: the clean "
           "split is the same for every kind, so it is trained and evaluated once and is the 0% point of every "
           "kind's curve" + ("; the base model is one row." if a.has_base else ".")]
    out += [f"**Thresholds by kind.** {line}" for line in a.findings.thresholds]
    if a.misalignment:
        out.append(f"**Misalignment (paper 001).** {a.misalignment['sentence']}")
    for k in a.kinds:
        out += [f"**{k}: {line.removeprefix('**')}" for line in _findings(a.by_kind[k])]
    return out


def _findings(a: StudyAnalysis, labeller: str = "") -> list[str]:
    """The Findings section's sentences, each prefixed with its id (`labeller`: who wrote paper 002's labels)."""
    out = [f"**{_LABELS.get(f.id, f.id)}.** {f.sentence}" for f in a.findings.findings]
    if a.nli_gap:
        out.append(f"**MNLI vs HANS.** {a.nli_gap['sentence']} {labeller}".rstrip())
    if a.misalignment:
        out.append(f"**Misalignment (paper 001).** {a.misalignment['sentence']}")
    return out


def read_findings(report_dir: Path) -> list[str]:
    """The report's Findings as plain lines (`- F1. ...`), for the terminal; none for a report without them."""
    path = report_dir / FINDINGS
    return path.read_text().splitlines() if path.is_file() else []


def _method_note(a: StudyAnalysis | KindsAnalysis) -> str:
    return (f"Decisions at α = {a.alpha}. CIs: 95% percentile intervals of a paired item bootstrap "
            f"({a.bootstrap} resamples of the benchmark items, the same resample for every model); trend p: "
            "within-item permutation test of the least-squares slope of score on ratio (model labels shuffled "
            "within each item); below chance: "
            "exact one-sided binomial test on the items (docs/analysis.md).")


def _labeller(analysis_dir: Path) -> str:
    """Who wrote the synthetic labels, from the generate artifacts in the analysis's lineage."""
    found = {(m["meta"].get("backend"), m["meta"].get("model"))
             for _, m in artifacts.ancestors(analysis_dir) if m["kind"] == "pairs"}  # generate artifacts
    if not found:
        return "Synthetic labels: generator unknown (no generate artifact in the lineage)."
    who = ["the template rule (word overlap; no model, a stand-in for a model's labels)" if b == "template"
           else f"the {b} model {mod} (it labelled the MNLI pairs itself)" for b, mod in sorted(found, key=str)]
    return f"Synthetic labels and explanations written by {', '.join(who)}."


def _lineage(analysis_dir: Path) -> list[list[str]]:
    m = artifacts.read_manifest(analysis_dir)
    rows = [["analysis", str(analysis_dir), artifacts.manifest_hash(analysis_dir)[:16], m["code_version"]]]
    rows += [[p["kind"], p["path"], p["manifest_sha256"][:16], ""] for p in m["parents"]]
    return rows


def _markdown(study: Study, findings: list[str], note: str, tables: list[Table], figures: list[Path],
              lineage: list[list[str]]) -> str:
    def md_table(head: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    out = [f"# {study.report.title}", "", study.description, "",
           f"Study `{study.name}`, config hash `{study.config_hash()[:16]}`.", "", "## Findings", ""]
    out += [f"- {line}" for line in findings] + ["", f"*{note}*", ""]
    for title, head, rows in tables:
        out += [f"## {title}", "", md_table(head, rows), ""]
    out += ["## Figures", ""]
    for fig in figures:
        out += [f"![{_caption(fig.name)}](figures/{fig.name})", "", f"*{_caption(fig.name)}*", ""]
    out += ["## Lineage", "", md_table(["artifact", "path", "manifest sha256", "code"], lineage), ""]
    return "\n".join(out)


def _html(study: Study, findings: list[str], note: str, tables: list[Table], figures: list[Path],
          lineage: list[list[str]]) -> str:
    def h_table(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    parts = [f"<h1>{html.escape(study.report.title)}</h1>", f"<p>{html.escape(study.description)}</p>",
             f"<p>Study <code>{html.escape(study.name)}</code>, config hash "
             f"<code>{study.config_hash()[:16]}</code>.</p>", "<h2>Findings</h2>", "<ul>"]
    for line in findings:
        tag, _, rest = line.removeprefix("**").partition(".** ")
        parts.append(f"<li><strong>{html.escape(tag)}.</strong> {html.escape(rest)}</li>")
    parts += ["</ul>", f"<p><em>{html.escape(note)}</em></p>"]
    for title, head, rows in tables:
        parts += [f"<h2>{html.escape(title)}</h2>", h_table(head, rows)]
    parts.append("<h2>Figures</h2>")
    for fig in figures:
        data = base64.b64encode(fig.read_bytes()).decode()
        cap = html.escape(_caption(fig.name))
        parts.append(f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"><figcaption>{cap}'
                     "</figcaption></figure>")
    parts += ["<h2>Lineage</h2>", h_table(["artifact", "path", "manifest sha256", "code"], lineage)]
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study.report.title)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def run(study: Study, analysis_dir: Path, out: Path) -> Path:
    artifacts.require(analysis_dir, artifact_kinds.ANALYSIS)
    a = schema.read(analysis_dir)
    if isinstance(a, KindsAnalysis):
        found, rendered = _kind_findings(a), kinds_tables(a)
    else:
        found = _findings(a, _labeller(analysis_dir) if a.nli_gap else "")
        rendered = study_tables(a)
    lineage = _lineage(analysis_dir)
    debug(f"report: {len(found)} findings, {len(rendered)} tables from {analysis_dir}")
    with artifacts.artifact_dir(out, artifact_kinds.REPORT, [analysis_dir], study.section_hash("report"), {}) as tmp:
        (tmp / "figures").mkdir()
        figures = []
        order = list(FIGURE_CAPTIONS)
        pngs = sorted((analysis_dir / "figures").glob("*.png"), key=lambda f: (
            order.index(name) if (name := f.name if f.name in order else f.name.partition("-")[2]) in order
            else len(order), f.name))
        for fig in pngs:
            shutil.copy2(fig, tmp / "figures" / fig.name)
            figures.append(tmp / "figures" / fig.name)
        note = _method_note(a)
        (tmp / "report.md").write_text(_markdown(study, found, note, rendered, figures, lineage))
        (tmp / FINDINGS).write_text("".join(f"- {line.replace('**', '')}\n" for line in found))
        if study.report.html:
            (tmp / "report.html").write_text(_html(study, found, note, rendered, figures, lineage))
    log(f"report: {out / 'report.md'}")
    return out
