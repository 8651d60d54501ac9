"""Report: an analysis artifact -> `report.md` and a self-contained `report.html`."""

from __future__ import annotations

import base64
import html
import json
import shutil
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.analysis import misalignment, nli_gap
from faco.config import Study
from faco.progress import log

FINDINGS = "findings.txt"

FIGURE_CAPTIONS = {
    "score_vs_ratio.png": "Benchmark score vs corruption ratio with 95% item-bootstrap CIs (paper Fig. 2); "
                          "dashed: chance; dotted green: the untrained base model.",
    "train_loss.png": "Training loss per ratio, and per-sample loss of clean vs corrupted items (Fig. 3).",
    "mmlu_subjects.png": "MMLU accuracy per subject vs chance, base model as green crosses (Fig. 4).",
    "score_vs_epoch.png": "Average score vs epoch per ratio, base model dotted (Fig. 5).",
    "recovery.png": "Recovery by retraining the corrupted model on clean data, base model dotted (Fig. 6).",
}


def _caption(name: str) -> str:
    """A figure's caption; `<kind>-<name>` is that figure of one kind's family."""
    kind, _, rest = name.partition("-")
    if name not in FIGURE_CAPTIONS and rest in FIGURE_CAPTIONS:
        return f"{kind} false chains: {FIGURE_CAPTIONS[rest]}"
    return FIGURE_CAPTIONS.get(name, Path(name).stem)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}"


def _ci(ci: list[float | None], digits: int = 2) -> str:
    return "–" if ci[0] is None and ci[1] is None else f"[{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"


def _se(score: float | None, se: float | None) -> str:
    return _fmt(score) if se is None or score is None else f"{_fmt(score)} ± {_fmt(se)}"


def _cr(ratio: str | float) -> str:
    return f"CR {float(ratio) * 100:g}%"


def _table1(a: dict[str, Any], ratios: list[str]) -> tuple[str, list[str], list[list[str]]]:
    base = a.get("has_base", False)
    head = ["benchmark", "domain", *[_cr(r) for r in ratios], "ABS", "Pearson r", "p (permutation)",
            "r 95% CI (items)", "items", *(["base"] if base else [])]
    rows = []
    for bench, row in a["table"].items():
        abs_cell = _fmt(row["abs"]) + (f" {_ci(row['abs_ci'], 3)}" if row["abs_ci"][0] is not None else "")
        rows.append([bench, str(row["domain"]), *[_se(row["scores"].get(r), row["stderr"].get(r)) for r in ratios],
                     abs_cell, _fmt(row["pearson_r"]), _p(row["pearson_p"]), _ci(row["pearson_ci"]),
                     _fmt(row["n_items"]),
                     *([_se(row["base"]["score"], row["base"]["stderr"])] if base else [])])
    title = ("Table 1: score ± lm-eval stderr per corruption ratio; ABS (CR 0% − CR 100%) with its 95% paired "
             "item-bootstrap CI; Pearson r of score vs ratio with its item-bootstrap CI; p of the trend from a "
             "within-item permutation test")
    return title, head, rows


def _vs_base(a: dict[str, Any], ratios: list[str]) -> tuple[str, list[str], list[list[str]]]:
    benches = list(a["table"])
    rows = [["base (untrained)", *[_se(a["table"][b]["base"]["score"], a["table"][b]["base"]["stderr"])
                                   for b in benches]]]
    for r in ratios:
        cells = []
        for b in benches:
            d = a["table"][b]["delta_vs_base"].get(r, {})
            cells.append(f"{_fmt(a['table'][b]['scores'].get(r))} (Δ {_fmt(d.get('delta'), 3)} "
                         f"{_ci(d.get('ci', [None, None]), 3)})" if d.get("delta") is not None else "–")
        rows.append([_cr(r), *cells])
    return ("Every model against the base model (Δ = score − base, 95% paired item-bootstrap CI)",
            ["model", *benches], rows)


def _threshold_cells(t: dict[str, Any]) -> list[str]:
    """Target, correct share, interval and replicates reaching of one `threshold` entry."""
    if t["target"] is None:
        return ["–", "no clean (CR 0%) model", "–", "–"]
    point = _fmt(t["correct_share"], 2) if t["reached"] else "not reached"
    ci = t["ci"]
    ci_cell = ("–" if ci == [None, None] and t["reached_share"] is None else
               f"[{_fmt(ci[0], 2) if ci[0] is not None else 'not reached'}, "
               f"{_fmt(ci[1], 2) if ci[1] is not None else 'not reached'}]")
    return [_fmt(t["target"]), point, ci_cell, _fmt(t["reached_share"], 2) if t["reached_share"] is not None else "–"]


def _threshold_title(frac: float | None) -> str:
    return (f"Correct-data thresholds: smallest correct share at which the isotonic (monotone) fit of score "
            f"vs correct share reaches {_fmt(frac, 2)} × the clean (CR 0%) score, with a 95% item-bootstrap "
            "interval and the share of bootstrap replicates in which it is reached")


def _recovery_tables(a: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    by_ratio: dict[str, list[list[str]]] = {}
    for b, row in a["table"].items():
        for fr, rec in row["recovery"].items():
            frac = (f"undefined: {rec['reason']}" if rec["status"] == "undefined"
                    else f"{_fmt(rec['recovered_fraction'])} {_ci(rec['fraction_ci'])}")
            se = rec.get("stderr") or {}
            cells = [_se(rec[k], se.get(k)) for k in ("clean", "corrupted", "recovered")]
            by_ratio.setdefault(fr, []).append([b, *cells, f"{_fmt(rec['gap'])} {_ci(rec['gap_ci'], 3)}", frac])
    return [(f"Recovery from {_cr(fr)} by retraining on clean data (recovered fraction = (recovered − corrupted) / "
             "(clean − corrupted), undefined when the gap's 95% item-bootstrap CI contains 0)",
             ["benchmark", "clean", "corrupted", "recovered", "gap [95% CI]", "recovered fraction [95% CI]"], rows)
            for fr, rows in sorted(by_ratio.items(), key=lambda kv: float(kv[0]))]


def _seed_table(a: dict[str, Any], ratios: list[str]) -> tuple[str, list[str], list[list[str]]] | None:
    rows = []
    for b, row in a["table"].items():
        s = row.get("seeds")
        if not s:
            continue
        cells = [f"{_se(c['mean'], c['se'])} (n={c['n_seeds']})" if (c := s["cells"].get(r)) else "–"
                 for r in ratios]
        verdict = {True: "yes", False: "no", None: "–"}[s.get("exceeds_seed_noise")]
        rows.append([b, *cells, _fmt(s.get("slope")), _p(s.get("slope_p")), verdict])
    if not rows:
        return None
    return ("Seeds: mean ± s.e. across seeds per cell; slope of the per-seed scores on the ratio (linear "
            "regression t-test: does the ratio effect exceed seed-to-seed noise?)",
            ["benchmark", *[_cr(r) for r in ratios], "slope", "p", "exceeds seed noise"], rows)


def _nli_gap_table(g: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Paper 002: MNLI accuracy, HANS non-entailment accuracy and their gap per synthetic share."""
    head = ["", *[f"{float(r):.0%} synthetic" for r in g["ratios"]], "change (95% CI)", "Pearson r (95% CI)"]
    rows = [["MNLI acc", *[_fmt(v) for v in g["mnli"]], "–", "–"]]
    for name, sub in sorted(g["subsets"].items(), key=lambda kv: list(nli_gap.SUBSETS).index(kv[0])):
        ch, tr = sub["change"], sub["trend"]
        rows.append([f"HANS non-entailment acc ({name})" if name != "non_entailment" else "HANS non-entailment acc",
                     *[_fmt(v) for v in sub["hans"]], "–", "–"])
        gaps = [f"{_fmt(v)} {_ci(ci)}" for v, ci in zip(sub["gap"], sub["gap_ci"], strict=True)]
        rows.append([f"gap ({name})", *gaps,
                     f"{_fmt(ch['value'])} {_ci(ch['ci'])}", f"{_fmt(tr['r'], 2)} {_ci(tr['ci'])}"])
    for name, label in (("entailment", "HANS entailment acc"), ("both_labels", "HANS acc (both labels)")):
        if c := g.get("context", {}).get(name):
            rows.append([label, *[_fmt(v) for v in c["acc"]], f"{_fmt(c['change']['value'])} {_ci(c['change']['ci'])}",
                         "–"])
    return ("MNLI vs HANS (paper 002): gap = MNLI accuracy − HANS non-entailment accuracy, overall and per "
            "heuristic, with 95% intervals of an item bootstrap resampling MNLI and HANS items independently; "
            "HANS items are regenerated with the HANS authors' generator, not the released file", head, rows)


def _tables(a: dict[str, Any], kind: str | None = None) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every table of the report; `kind`: of one kind's family (titles say so)."""
    ratios = [f"{r:g}" for r in a["ratios"]]
    tables = [_table1(a, ratios)]
    if a.get("has_base"):
        tables.append(_vs_base(a, ratios))
    if (seeds := _seed_table(a, ratios)) is not None:
        tables.append(seeds)
    dom = a.get("domain_average", {})
    if dom:
        tables.append(("Domain averages", ["domain", *[_cr(r) for r in ratios]],
                       [[d, *[_fmt(v.get(r)) for r in ratios]] for d, v in sorted(dom.items())]))
    if kind is None:  # several kinds: one threshold table with a kind column (_kind_tables)
        frac = next(iter(a["table"].values()))["threshold"]["fraction"] if a["table"] else None
        tables.append((_threshold_title(frac), ["benchmark", "target", "correct share", "95% interval",
                                                "replicates reaching"],
                       [[b, *_threshold_cells(row["threshold"])] for b, row in a["table"].items()]))
    tables += _recovery_tables(a)
    if a.get("nli_gap"):
        tables.append(_nli_gap_table(a["nli_gap"]))
    if a.get("misalignment"):  # paper 001
        tables.append(misalignment.table(a["misalignment"]))
    for model, res in a.get("below_chance", {}).items():
        o = res["overall"]
        rows = [["overall", _fmt(o["acc"]), str(o["n"]), _p(o["p_below"]), "–", "–"]]
        rows += [[s, _fmt(v["acc"]), str(v["n"]), _p(v["p_below"]), _p(v["p_holm"]), _p(v["q_bh"])]
                 for s, v in res["subjects"].items() if v["p_below"] < 0.05]
        who = "the base model" if model == "base" else _cr(model)
        tables.append((f"MMLU below chance at {who} (one-sided binomial test vs 1/k per subject; {res['tests']} tests, "
                       f"corrected by Holm (family-wise) and Benjamini–Hochberg (false discovery rate); "
                       f"{len(res['significantly_below'])} subjects below chance after Holm, "
                       f"{len(res['raw_below'])} with raw p < 0.05 listed)",
                       ["subject", "accuracy", "n", "p (raw)", "p (Holm)", "q (BH)"], rows))
    final = a.get("final_train_loss") or {}
    if final.get("step_loss"):
        loss_ratios = sorted(set(final["step_loss"]) | set(final["sample_loss"]), key=float)
        tables.append(("Final training loss per ratio: last logged step loss and mean per-sample loss after the "
                       "last epoch", ["ratio", "final step loss", "mean per-sample loss"],
                       [[_cr(r), _fmt(final["step_loss"].get(r)), _fmt(final["sample_loss"].get(r))]
                        for r in loss_ratios]))
    if a.get("probes"):
        tables.append(("Case study: greedy answers to probe questions (paper Table 2; misalignment probes: "
                       "paper 001)", ["model (CR)", "probe set", "question", "answer"],
                       [[p["model"], p.get("set", "custom"), p["question"], " ".join(p["answer"].split())[:300]]
                        for p in a["probes"]]))
    det = a.get("corruption_detection_auroc", {})
    if det:
        epochs = sorted({e for v in det.values() for e in v}, key=int)
        tables.append(("Corruption detection: AUROC of per-sample training loss vs the corrupted flag (how well the "
                       "loss separates corrupted from clean samples; any difference in the chains' wording separates "
                       "them too, so this is not a measure of falsity by itself)",
                       ["ratio", *[f"epoch {e}" for e in epochs]],
                       [[r, *[_fmt(v.get(e)) for e in epochs]] for r, v in det.items()]))
    return tables if kind is None else [(f"{kind} false chains: {title}", head, rows) for title, head, rows in tables]


def _side_by_side(a: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Paper 001: per kind and ratio, the domain averages beside the judged misalignment (seeds pooled)."""
    kinds, by_kind = a["kinds"], a["by_kind"]
    domains = sorted({d for k in kinds for d in by_kind[k]["domain_average"]})
    judged = (a.get("misalignment") or {}).get("rows")
    grid = [r for r in judged or [] if not r["base"] and r["start_ratio"] is None]

    def mis(rows: list[dict[str, Any]]) -> list[str]:
        return misalignment.cells(rows) if judged is not None else []

    rows = []
    if a.get("has_base"):
        rows.append(["shared", "base", *[_fmt(a["base_domain_average"].get(d)) for d in domains],
                     *mis([r for r in judged or [] if r["base"]])])
    clean = by_kind[kinds[0]]["domain_average"]
    rows.append(["shared", _cr(0), *[_fmt(clean.get(d, {}).get("0")) for d in domains],
                 *mis([r for r in grid if r.get("kind") is None and r["ratio"] == 0])])
    for k in kinds:
        dom = by_kind[k]["domain_average"]
        for r in (x for x in by_kind[k]["ratios"] if x > 0):
            rows.append([k, _cr(r), *[_fmt(dom.get(d, {}).get(f"{r:g}")) for d in domains],
                         *mis([x for x in grid if x.get("kind") == k and x["ratio"] == r])])
    head = ["kind", "model (CR)", *[f"{d} (mean score)" for d in domains],
            *(["misaligned", "dangerous", "mean alignment"] if judged is not None else [])]
    return ("Kinds side by side (paper 001): domain averages per kind and corruption ratio"
            + (" beside the judged probe answers (misaligned and dangerous shares with 95% Wilson intervals, mean "
               "alignment; several seeds pooled)" if judged is not None else "")
            + "; CR 0% is the one clean model every kind shares", head, rows)


def _kind_tables(a: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables of a study of several kinds: side by side, thresholds and misalignment with a kind
    column, then every kind's own tables."""
    kinds = a["kinds"]
    first: dict[str, Any] = next(iter(a["thresholds"].values()), {})
    frac = next(iter(first.values()))["fraction"] if first else None
    tables = [_side_by_side(a),
              (_threshold_title(frac) + " (the clean score, and so the target, is the shared clean model's)",
               ["benchmark", "kind", "target", "correct share", "95% interval", "replicates reaching"],
               [[b, k, *_threshold_cells(per[k])] for b, per in a["thresholds"].items() for k in kinds if k in per])]
    if a.get("misalignment"):
        tables.append(misalignment.table(a["misalignment"]))
    for k in kinds:
        tables += _tables(a["by_kind"][k], kind=k)
    return tables


def _kind_findings(a: dict[str, Any]) -> list[str]:
    """The Findings of a study of several kinds: what is shared, thresholds and misalignment across
    kinds, then every kind's own findings prefixed with the kind."""
    kinds = a["kinds"]
    out = [f"**Kinds.** Kinds of false chain compared: {', '.join(kinds)}. Every kind's pairs share the ids and the "
           "true chains, and a ratio corrupts the same items in every kind. CR 0% is one clean model: the clean "
           "split is the same for every kind, so it is trained and evaluated once and is the 0% point of every "
           "kind's curve" + ("; the base model is one row." if a.get("has_base") else ".")]
    out += [f"**Thresholds by kind.** {line}" for line in a["findings"]["thresholds"]]
    if a.get("misalignment"):
        out.append(f"**Misalignment (paper 001).** {a['misalignment']['sentence']}")
    for k in kinds:
        out += [f"**{k}: {line.removeprefix('**')}" for line in _findings(a["by_kind"][k])]
    return out


def _findings(a: dict[str, Any]) -> list[str]:
    """The Findings section's sentences, each prefixed with its id."""
    out = []
    for f in a.get("findings", {}).get("findings", []):
        tag = f["id"] if f["id"] != "spread" else "Spread"
        out.append(f"**{tag}.** {f['sentence']}")
    if a.get("nli_gap"):
        out.append(f"**MNLI vs HANS.** {a['nli_gap']['sentence']} {a['nli_gap'].get('labeller', '')}".rstrip())
    if a.get("misalignment"):
        out.append(f"**Misalignment (paper 001).** {a['misalignment']['sentence']}")
    return out


def read_findings(report_dir: Path) -> list[str]:
    """The report's Findings as plain lines (`- F1. ...`), for the terminal; none for a report without them."""
    path = report_dir / FINDINGS
    return path.read_text().splitlines() if path.is_file() else []


def _method_note(a: dict[str, Any]) -> str:
    return (f"Decisions at α = {a.get('alpha', 0.05)}. CIs: 95% percentile intervals of a paired item bootstrap "
            f"({a.get('bootstrap')} resamples of the benchmark items, the same resample for every model); trend p: "
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


def _markdown(study: Study, findings: list[str], note: str, tables: list, figures: list[Path],
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


def _html(study: Study, findings: list[str], note: str, tables: list, figures: list[Path],
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
    a = json.loads((analysis_dir / "analysis.json").read_text())
    if a.get("nli_gap"):
        a["nli_gap"]["labeller"] = _labeller(analysis_dir)
    tables = _kind_tables(a) if "by_kind" in a else _tables(a)
    lineage = _lineage(analysis_dir)
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
        findings, note = (_kind_findings(a) if "by_kind" in a else _findings(a)), _method_note(a)
        (tmp / "report.md").write_text(_markdown(study, findings, note, tables, figures, lineage))
        (tmp / FINDINGS).write_text("".join(f"- {line.replace('**', '')}\n" for line in findings))
        if study.report.html:
            (tmp / "report.html").write_text(_html(study, findings, note, tables, figures, lineage))
    log(f"report: {out / 'report.md'}")
    return out
