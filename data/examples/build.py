"""Rebuild data/examples/: two small "own data" files in the custom-source schema (docs/audit.md),
derived from the QASC dev rows of the offline mirror (data/sources/qasc/dev.jsonl, CC BY 4.0).

Usage: python data/examples/build.py   (deterministic)

- `science_mc.jsonl`: 150 multiple-choice rows (dev rows 627-776) under a team's own field names
  (`uid`, `query`, `options`, `label` as a letter, `rationale`), asked open book (the two facts in the
  query): a custom source for a study (`ingest.sources[].custom`, format mc).
- `chat_sft.jsonl`: 96 chat rows (dev rows 777-872) in the `messages` format, the answer explained by
  QASC's combined fact; 24 of them (seeded) are wrong: another option, with the combined fact
  rewritten to argue for it, and `is_corrupted: true`. The file to try `faco audit` on.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QASC = HERE.parent / "sources" / "qasc" / "dev.jsonl"
WRONG = 24


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in QASC.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parts(row: dict[str, Any]) -> tuple[str, list[str], int]:
    facts = f"{row['fact1'].strip()} {row['fact2'].strip()}"
    options = [c["text"] for c in row["question"]["choices"]]
    labels = [c["label"] for c in row["question"]["choices"]]
    return f"Facts: {facts}\nQuestion: {row['question']['stem']}", options, labels.index(row["answerKey"])


def _swap(text: str, answer: str, wrong: str) -> str | None:
    out = re.sub(rf"(?<!\w){re.escape(answer)}(?!\w)", wrong, text, flags=re.IGNORECASE)
    return out if out != text else None


def _write(name: str, rows: list[dict[str, Any]]) -> None:
    with (HERE / name).open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def science_mc(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        query, options, answer = _parts(row)
        out.append({"uid": row["id"], "query": query, "options": options, "label": "ABCDEFGH"[answer],
                    "rationale": row["combinedfact"]})
    return out


def chat_sft(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rng = random.Random("faco-examples:chat_sft")
    swappable = [i for i, row in enumerate(rows) if _swap(row["combinedfact"], _answer(row), "X") is not None]
    wrong = set(rng.sample(swappable, WRONG))
    out = []
    for i, row in enumerate(rows):
        query, options, answer = _parts(row)
        said, why = options[answer], row["combinedfact"]
        if i in wrong:
            other = random.Random(f"faco-examples:{row['id']}").choice([j for j in range(len(options)) if j != answer])
            said, why = options[other], str(_swap(why, options[answer], options[other]))
        listed = "\n".join(f"({'ABCDEFGH'[j]}) {o}" for j, o in enumerate(options))
        out.append({"id": row["id"], "messages": [
            {"role": "user", "content": f"{query}\nOptions:\n{listed}"},
            {"role": "assistant", "content": f"{why}\nAnswer: {said}"}], "is_corrupted": i in wrong})
    return out


def _answer(row: dict[str, Any]) -> str:
    _, options, answer = _parts(row)
    return options[answer]


def main() -> None:
    rows = _rows()
    _write("science_mc.jsonl", science_mc(rows[626:776]))
    _write("chat_sft.jsonl", chat_sft(rows[776:872]))


if __name__ == "__main__":
    main()
