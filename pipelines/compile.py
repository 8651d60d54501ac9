"""Compile every pipeline to pipelines/*.yaml: `python pipelines/compile.py [--settings FILE] [--out DIR]`."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faco.k8s.settings import load_settings
from faco.kfp_cli import compile_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settings", type=Path, help="cluster settings YAML (default: built-in defaults)")
    parser.add_argument("--out", type=Path, help="output directory (default: pipelines/)")
    args = parser.parse_args()
    for path in compile_all(args.out, load_settings(args.settings)):
        print(path)


if __name__ == "__main__":
    main()
