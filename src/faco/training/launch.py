"""The train stage as a launcher entry point: `torchrun ... -m faco.training.launch CONFIG ...`.

Every process runs the same command; torchrun (or the deepspeed launcher) sets RANK, WORLD_SIZE
and MASTER_ADDR/PORT, and only rank 0 writes the model artifact. Alone (`python -m ...`) it
trains in one process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faco import config_slices, signals
from faco.errors import ConfigError, FacoError, Terminated
from faco.stages import train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m faco.training.launch", description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path, help="study config (YAML), or a pipeline task's config slice")
    p.add_argument("--splits", type=Path, required=True, help="splits artifact of the corrupt stage")
    p.add_argument("--ratio", type=float, required=True, help="corruption ratio of the split to train on")
    p.add_argument("--out", type=Path, required=True, help="model artifact to write")
    p.add_argument("--start", type=Path, help="model artifact to continue from (recovery)")
    p.add_argument("--snapshots", type=Path, help="write the epoch snapshots here, as their own artifact")
    p.add_argument("--work-dir", type=Path, help="resumable checkpoints (default: .<out>.work next to --out)")
    p.add_argument("--no-resume", action="store_true", help="start over even if the work dir has checkpoints")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.deepspeed=zero3")
    a = p.parse_args(argv)
    try:
        with signals.handled():
            if not a.config.is_file():
                raise ConfigError(f"{a.config}: no such config file")
            study = config_slices.load(a.config.read_text(), str(a.config), a.overrides)
            train.run(study, a.splits, a.ratio, a.out, start=a.start, work_dir=a.work_dir, resume=not a.no_resume,
                      snapshots=a.snapshots)
    except (FacoError, Terminated) as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
