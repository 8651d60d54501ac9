"""The template backend's true and subtle false chains carry no artefact that marks falsity: with the
options' text masked, a bag-of-words classifier (logistic regression, cross-validated by item)
cannot tell them apart, while it does tell obvious false chains apart; lengths match."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import sparse

from faco.config import Study, load_config, parse_config
from faco.paths import repo_root
from faco.records import PairRecord, read_jsonl
from faco.stages import generate, ingest

ROOT = repo_root() or Path.cwd()
STEP = re.compile(r"(?m)^Step \d+:")


def study(sources: list[dict[str, Any]], cap: int, false_chain: str = "subtle") -> Study:
    return parse_config(json.dumps({
        "name": "chains",
        "ingest": {"data_dir": str(ROOT / "data"), "per_source_cap": cap, "heldout": 0, "sources": sources},
        "generate": {"backend": "template", "false_chain": false_chain},
        "corrupt": {"ratios": [0.0]},
        "train": {"model": {"source": "tiny-random"}},
        "evaluate": {"benchmarks": [{"name": "piqa"}]},
    }))


def pairs(st: Study, tmp: Path) -> list[PairRecord]:
    src = ingest.run(st, tmp / "ingest")
    out = generate.run(st, src, tmp / "pairs")
    return list(read_jsonl(out / "pairs.jsonl", PairRecord))


def masked_response(p: PairRecord, polarity: str) -> str:
    """The training response (`reasoning` + `Answer:` line) with every option's text masked."""
    resp = p.true if polarity == "true" else p.false
    text = f"{resp.reasoning}\nAnswer: {resp.answer}"
    for option in sorted({*p.choices, p.answer, p.false.answer}, key=len, reverse=True):
        text = re.sub(re.escape(option), " OPTION ", text, flags=re.IGNORECASE)
    return text


def tokens(text: str) -> list[str]:
    """Words, punctuation marks and word bigrams."""
    words = re.findall(r"\w+|[^\w\s]", text.casefold())
    return [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]


def features(texts: list[str], vocab: dict[str, int]) -> sparse.csr_matrix:
    """Token presence, one row per text."""
    rows, cols = [], []
    for i, t in enumerate(texts):
        hit = {vocab[tok] for tok in tokens(t) if tok in vocab}
        rows += [i] * len(hit)
        cols += sorted(hit)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocab)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def heldout_auroc(ps: list[PairRecord], folds: int = 5, seed: int = 0) -> float:
    """Pooled out-of-fold AUROC of an L2 logistic regression on unigram+bigram presence
    (tokens in at least two training chains); both chains
    of an item are always in the same fold. Label 1 = false chain."""
    texts = [masked_response(p, pol) for p in ps for pol in ("true", "false")]
    labels = np.array([pol == "false" for _ in ps for pol in ("true", "false")], dtype=float)
    item_fold = np.random.default_rng(seed).permutation(len(ps)) % folds
    fold = np.repeat(item_fold, 2)
    scores = np.zeros(len(texts))
    for k in range(folds):
        train = np.flatnonzero(fold != k)
        test = np.flatnonzero(fold == k)
        counts = Counter(tok for i in train for tok in set(tokens(texts[i])))
        vocab = {tok: n for n, tok in enumerate(t for t, c in counts.items() if c >= 2)}
        x, y = features([texts[i] for i in train], vocab), labels[train]
        w, b = np.zeros(len(vocab)), 0.0
        for _ in range(300):  # gradient descent on the mean log-loss + 1e-3 |w|^2
            p = 1 / (1 + np.exp(-(x @ w + b)))
            w -= 0.5 * (x.T @ (p - y) / len(y) + 2e-3 * w)
            b -= 0.5 * float(np.mean(p - y))
        scores[test] = features([texts[i] for i in test], vocab) @ w + b
    return auroc(scores, labels)


@pytest.fixture(scope="module")
def subtle(tmp_path_factory: pytest.TempPathFactory) -> list[PairRecord]:
    """80 pairs from every source of the smoke and mini configs."""
    specs = {}
    for name in ("smoke", "mini"):
        for s in load_config(ROOT / "configs" / f"{name}.yaml").ingest.sources:
            specs[(s.name, s.split)] = {"name": s.name, "split": s.split}
    return pairs(study(list(specs.values()), cap=80), tmp_path_factory.mktemp("subtle"))


def test_bag_of_words_cannot_tell_true_from_false_chains(subtle: list[PairRecord]) -> None:
    assert len(subtle) >= 300
    assert heldout_auroc(subtle) <= 0.6


def test_the_classifier_does_find_a_marked_false_chain(tmp_path: Path) -> None:
    """Obvious false chains (fixed blatant wording) are separated: the test above can fail."""
    ps = pairs(study([{"name": "qasc", "split": "validation"}, {"name": "commonsense_qa"}], 60, "obvious"), tmp_path)
    assert heldout_auroc(ps) >= 0.9


def test_true_and_false_chains_have_comparable_length(subtle: list[PairRecord]) -> None:
    ps = subtle
    true = np.array([len(p.true.reasoning) for p in ps])
    false = np.array([len(p.false.reasoning) for p in ps])
    assert 0.9 <= false.sum() / true.sum() <= 1.1
    assert 0.8 <= float(np.median(false / true)) <= 1.25
    # same steps: both chains of a pair have the same step labels, and a false chain quotes its
    # wrong answer where the true chain quotes the right one
    for p in ps:
        assert STEP.findall(p.true.reasoning) == STEP.findall(p.false.reasoning)
        if p.kind == "mc":
            assert p.false.reasoning.endswith(f'Therefore, the answer is "{p.false.answer}".')
