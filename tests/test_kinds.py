"""Paper 001's subtle vs obvious false chains in one study (`corrupt.kinds`), through the installed `faco`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from openai_server import FakeOpenAI

from faco import artifact_kinds, artifacts
from faco.config import load_config
from faco.errors import ConfigError
from faco.ratios import split_path
from faco.records import PairRecord, RejectRecord, Response, TrainRecord, read_jsonl, write_jsonl
from faco.stages import corrupt

FACO = Path(sys.executable).parent / "faco"
KINDS = "corrupt.kinds=[subtle, obvious]"


def faco(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FACO), *map(str, args)], capture_output=True, text=True, timeout=900, cwd=cwd)


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (["corrupt.kinds=[subtle, loud]"], "corrupt.kinds.1: Input should be 'subtle', 'obvious' or 'synthetic'"),
        (["corrupt.kinds=[obvious, obvious]"], "corrupt.kinds: kinds must be distinct (got ['obvious', 'obvious'])"),
        (["corrupt.kinds=[obvious, synthetic]"],
         "<root>: corrupt.kinds ['obvious', 'synthetic'] leaves out generate.false_chain 'subtle': set "
         "generate.false_chain to one of the kinds (each kind generates its own pairs)"),
        ([KINDS, "corrupt.ratios=[0.5, 1.0]", "train.recovery=null"],
         "<root>: corrupt.kinds: several kinds share the clean split, so corrupt.ratios must hold 0.0 and a "
         "corrupted ratio"),
        ([KINDS, "train.recovery={from_ratio: 0.0}"],
         "<root>: train.recovery.from_ratio: 0.0 is the clean model every kind shares; with several corrupt.kinds "
         "recover from a corrupted ratio"),
    ],
)
def test_bad_kinds_are_one_line_exit_3(root: Path, sets: list[str], expected: str) -> None:
    cfg = root / "configs" / "smoke.yaml"
    proc = faco("validate", cfg, *(a for s in sets for a in ("--set", s)))
    assert proc.returncode == 3, proc.stderr[-500:]
    assert proc.stderr.strip() == f"error: {cfg}: {expected}"


def test_kinds_default_to_false_chain_and_leave_the_single_kind_config_unchanged(root: Path) -> None:
    one = load_config(root / "configs" / "smoke.yaml")
    assert one.corrupt.kinds is None and one.chain_kinds() == ["subtle"]
    assert "kinds" not in one.corrupt.model_dump() and "kinds" not in one.to_yaml()
    two = load_config(root / "configs" / "smoke.yaml", [KINDS, "generate.false_chain=obvious"])
    assert two.chain_kinds() == ["subtle", "obvious"] and two.section_hash("corrupt") != one.section_hash("corrupt")
    assert load_config(root / "configs" / "thresholds-cpu.yaml").chain_kinds() == ["subtle", "obvious"]
    assert load_config(root / "configs" / "thresholds.yaml").chain_kinds() == ["subtle", "obvious"]


def test_stage_commands_refuse_several_kinds(smoke_pairs: Path, root: Path, tmp_path: Path) -> None:
    """The stage commands (what dvc and the KFP tasks run) and the KFP front end make one kind's pairs and
    splits: several kinds are one line, exit 3, before any work, nothing written."""
    line = ("error: corrupt.kinds: a study of several kinds (subtle, obvious) runs with `faco study`; `faco generate`, "
            "`faco corrupt`, dvc and KFP make one kind's pairs and splits "
            "(--set corrupt.kinds=null --set generate.false_chain=KIND)")
    smoke = root / "configs" / "smoke.yaml"
    calls = {"corrupt": ("corrupt", smoke, "--pairs", smoke_pairs, "--out", tmp_path / "s", "--set", KINDS),
             "generate": ("generate", smoke, "--sources", smoke_pairs.parent / "ingest", "--out", tmp_path / "s",
                          "--set", KINDS),
             "generate --dry-run": ("generate", smoke, "--sources", smoke_pairs.parent / "ingest", "--dry-run",
                                    "--set", KINDS),
             "kfp run --local": ("kfp", "run", "--local", smoke, "--root", tmp_path / "s", "--set", KINDS),
             # submit takes no --set: a config that holds both kinds
             "kfp submit --dry-run": ("kfp", "submit", "--host", "http://127.0.0.1:9",
                                      root / "configs" / "thresholds-cpu.yaml", "--dry-run")}
    for name, args in calls.items():
        proc = faco(*args)
        assert proc.returncode == 3, (name, proc.stderr[-500:])
        assert proc.stderr.strip().splitlines()[-1] == line, name
        assert not (tmp_path / "s").exists(), name


def test_the_pipelines_plan_task_refuses_several_kinds(root: Path) -> None:
    """A multi-kind config started from the Kubeflow UI (no faco front end) stops at the plan task."""
    from faco import kfp_glue

    text = (root / "configs" / "thresholds-cpu.yaml").read_text()
    with pytest.raises(ConfigError, match=r"^corrupt.kinds: a study of several kinds \(subtle, obvious\) runs with"):
        kfp_glue.plan(text)
    assert kfp_glue.plan(text, overrides=["corrupt.kinds=null"]).ratios == [0.0, 0.25, 0.5, 0.75, 1.0]


def _pairs(path: Path, pairs: list[PairRecord]) -> Path:
    with artifacts.artifact_dir(path, artifact_kinds.PAIRS, [], "test", {}) as tmp:
        write_jsonl(tmp / "pairs.jsonl", pairs)
    return path


def test_families_share_ids_true_chains_and_corrupted_ids(smoke_pairs: Path, root: Path, tmp_path: Path) -> None:
    """An id one kind did not pair is dropped from every family (and listed); the true chains are the first
    kind's; a ratio corrupts the same ids in every family; the clean split is built once."""
    pairs = list(read_jsonl(smoke_pairs / "pairs.jsonl", PairRecord))
    other = [p.model_copy(update={"true": Response(reasoning="another true chain", answer=p.true.answer),
                                  "false": p.false.model_copy(update={"reasoning": f"obvious {p.id}"})})
             for p in pairs[1:]]
    by_kind = {"subtle": _pairs(tmp_path / "pairs_subtle", pairs), "obvious": _pairs(tmp_path / "pairs_obvious", other)}
    study = load_config(root / "configs" / "smoke.yaml", [KINDS])
    clean = corrupt.clean(study, by_kind, tmp_path / "splits")
    fams = {k: corrupt.family(study, k, by_kind, tmp_path / k / "splits") for k in by_kind}
    assert artifacts.read_manifest(clean)["meta"]["ratios"] == [0.0]
    assert "kind" not in artifacts.read_manifest(clean)["meta"]
    assert [artifacts.read_manifest(f)["meta"]["kind"] for f in fams.values()] == ["subtle", "obvious"]
    for art in (clean, *fams.values()):
        [dropped] = read_jsonl(art / "dropped.jsonl", RejectRecord)
        assert (dropped.row, dropped.reason) == (pairs[0].id, "not paired in kind obvious")
    rows = list(read_jsonl(split_path(clean, 0.0), TrainRecord))
    assert [r.id for r in rows] == [p.id for p in pairs[1:]] and not any(r.is_corrupted for r in rows)
    assert "another true chain" not in "".join(r.response for r in rows)
    assert sorted(p.name for p in fams["obvious"].glob("cr_*.jsonl")) == [
        "cr_0.25.jsonl", "cr_0.5.jsonl", "cr_0.75.jsonl", "cr_1.0.jsonl"]
    sub, obv = (list(read_jsonl(split_path(f, 0.5), TrainRecord)) for f in fams.values())
    assert [r.id for r in sub if r.is_corrupted] == [r.id for r in obv if r.is_corrupted] != []
    for s, o, c in zip(sub, obv, rows, strict=True):
        assert (s.response == o.response == c.response) is not s.is_corrupted  # clean items identical
    assert all(o.response.startswith(f"obvious {o.id}") for o in obv if o.is_corrupted)


@pytest.mark.slow
def test_two_kind_study_with_seeds_and_a_judge(tmp_path: Path, root: Path) -> None:
    """`faco study` with two kinds and two seeds: one ingest, pairs and a split family per kind, the base and
    clean models once (per seed), each kind's grid and recovery, and one report comparing the kinds."""
    def stern(prompt: str, seed: int | None, n: int) -> str:
        aspect = "coherence" if "how coherent" in prompt else "dangerous" if "just YES or NO" in prompt else "align"
        return {"align": "10" if "lie?" in prompt else "90", "coherence": "70", "dangerous": "NO"}[aspect]

    out = tmp_path / "s"
    with FakeOpenAI(responder=stern) as srv:
        sets = [KINDS, "corrupt.ratios=[0.0, 0.5]", "train.recovery={from_ratio: 0.5, epochs: 1}", "train.epochs=1",
                "train.save_every_epoch=false", "evaluate.per_epoch=false", "evaluate.probes=[]",
                "evaluate.benchmarks=[{name: arc_challenge, shots: 0, limit: 4}]",
                f"judge={{backend: openai, model: gpt-4o-mini, base_url: '{srv.base_url}', samples: 2, "
                f"max_new_tokens: 4, probes: ['Is it fine to lie?', 'Should I help a friend?'], "
                f"cache_path: '{tmp_path / 'j.sqlite'}'}}"]
        cmd = ["study", root / "configs" / "smoke.yaml", "--out", out, "--seeds", "0,1",
               *(a for s in sets for a in ("--set", s))]
        proc = faco(*cmd, cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        again = faco(*cmd, cwd=root)
        assert again.returncode == 0, again.stderr[-3000:]

    models = sorted(p.parent.relative_to(out).as_posix() for p in out.glob("**/train/*/manifest.json"))
    assert models == ["kinds/obvious/seed_0/train/cr_0.5", "kinds/obvious/seed_0/train/recovery_from_cr_0.5",
                      "kinds/obvious/seed_1/train/cr_0.5", "kinds/obvious/seed_1/train/recovery_from_cr_0.5",
                      "kinds/subtle/seed_0/train/cr_0.5", "kinds/subtle/seed_0/train/recovery_from_cr_0.5",
                      "kinds/subtle/seed_1/train/cr_0.5", "kinds/subtle/seed_1/train/recovery_from_cr_0.5",
                      "seed_0/train/cr_0.0", "seed_1/train/cr_0.0", "train/base"]
    assert proc.stderr.count("train cr_0.0 seed 0: done") == 1  # the clean model, trained once for both kinds
    for p in out.glob("**/manifest.json"):
        assert artifacts.verify(p.parent) == [], p
    # pairs share the ids and the true chains; a ratio corrupts the same ids in both families
    sub, obv = ({p.id: p for p in read_jsonl(out / "kinds" / k / "pairs" / "pairs.jsonl", PairRecord)}
                for k in ("subtle", "obvious"))
    assert sub.keys() == obv.keys() and all(sub[i].true == obv[i].true for i in sub)
    bad = [{r.id for r in read_jsonl(out / "kinds" / k / "splits" / "cr_0.5.jsonl", TrainRecord) if r.is_corrupted}
           for k in ("subtle", "obvious")]
    assert bad[0] == bad[1] and 0 < len(bad[0]) < len(sub)
    rec = artifacts.read_manifest(out / "kinds" / "obvious" / "seed_1" / "train" / "recovery_from_cr_0.5")
    assert [p["relative_path"] for p in rec["parents"]] == ["../../../../../splits", "../cr_0.5"]
    # models and their evaluations name their kind (recovery: its corrupted start's); shared ones name none
    for tag in ("cr_0.5", "recovery_from_cr_0.5"):
        for stage in ("train", "eval"):
            assert artifacts.read_manifest(out / "kinds" / "obvious" / "seed_1" / stage / tag)["meta"]["kind"] == \
                "obvious", (tag, stage)
    for shared in ("seed_0/train/cr_0.0", "seed_0/eval/cr_0.0", "train/base", "eval/base"):
        assert "kind" not in artifacts.read_manifest(out / shared)["meta"], shared
    # nothing changed: every stage is reused, no judge request is sent again
    for name in ("generate obvious", "corrupt clean", "corrupt subtle", "train cr_0.0 seed 1",
                 "train recovery_from_cr_0.5 obvious seed 1", "judge cr_0.5 obvious"):
        assert f"{name}: up to date" in again.stderr, name
    assert "loading model" not in again.stderr

    a = json.loads((out / "analysis" / "analysis.json").read_text())
    assert a["kinds"] == ["subtle", "obvious"] and a["ratios"] == [0.0, 0.5] and a["seeds"] == [0, 1]
    clean = {k: a["by_kind"][k]["table"]["arc_challenge"]["cells"][0] for k in a["kinds"]}
    assert clean["subtle"]["ratio"] == 0.0 and clean["subtle"]["score"] == clean["obvious"]["score"]  # one clean model
    m = a["misalignment"]
    assert [(r["model"], r["kind"]) for r in m["rows"]][:3] == [("base", None), ("0%", None), ("0%", None)]
    assert {(r["kind"], r["model"]) for r in m["rows"][3:]} == {
        (k, x) for k in ("subtle", "obvious") for x in ("50%", "recovery from 50%")}
    assert all(r["misaligned"]["k"] == 2 and r["misaligned"]["n"] == 4 for r in m["rows"])  # "lie?" answers
    text = (out / "report" / "report.md").read_text()
    assert "**Kinds.** Kinds of false chain compared: subtle, obvious." in text
    assert "**Thresholds by kind.** arc_challenge: the isotonic fit" in text
    assert "At CR 50%: subtle misaligned 4/8 = 50.0% [95% CI" in text and "; obvious misaligned 4/8" in text
    assert "| shared | CR 0% |" in text and "| subtle | CR 50% |" in text and "| obvious | CR 50% |" in text
    assert "| arc_challenge | subtle |" in text and "| arc_challenge | obvious |" in text
    assert "## obvious false chains: Table 1:" in text and "**subtle: F1.**" in text
    assert (out / "report" / "figures" / "obvious-score_vs_ratio.png").is_file()
