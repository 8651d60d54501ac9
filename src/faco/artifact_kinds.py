"""Artifact kinds: the `kind` every stage writes into its manifest and every reader requires.

One low module, so stages name each other's artifacts without importing each other.
"""

from __future__ import annotations

SOURCES = "sources"  #: ingest: sources.jsonl (+ heldout.jsonl)
PAIRS = "pairs"  #: generate: pairs.jsonl, a true and a false chain per question
SPLITS = "splits"  #: corrupt: one training split per ratio
MODEL = "model"  #: train (and the untrained base model): model/, loss logs
SNAPSHOTS = "snapshots"  #: train, split off the model for a pipeline: checkpoints/epoch_N/ (not the last)
TRAIN_LOGS = "train_logs"  #: train's loss logs apart from the weights: loss.jsonl, sample_loss.jsonl, train_stats.json
EVAL = "eval"  #: evaluate: scores.json, samples/
JUDGED = "judged"  #: judge: judged probe answers (paper 001)
ANALYSIS = "analysis"  #: analyze: analysis.json, table1.csv, figures/
REPORT = "report"  #: report: report.md, report.html
AUDIT = "audit"  #: audit: ranking.jsonl, detector scores, summary (docs/audit.md)
