"""A two-writer, one-reader pipeline whose reader reports what it can see (tests/test_containers.py).

    python tests/probe_pipeline.py IMAGE OUT.yaml

`look` declares the first writer's output as its input; the second writer's output is only a
sibling folder in the pipeline root. It records whether it can read each, the checkout (its path
is a parameter), the network and a file in the image's root, its user, and whether the
checkpoint volume it mounts is writable.
"""

import sys

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Output

IMAGE = sys.argv[1] if __name__ == "__main__" else "faco-cpu"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def write(data: Output[Dataset]):
    from pathlib import Path

    Path(data.path).write_text("declared")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def look(checkout: str, data: Input[Dataset], seen: Output[Dataset]):
    import json
    import os
    import socket
    from pathlib import Path

    undeclared = Path(seen.path).parents[1] / "write-2" / "data"  # the second writer's output
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        network = True
    except OSError:
        network = False
    try:
        Path("/opt/faco/probe").write_text("x")
        root_writable = True
    except OSError:
        root_writable = False
    Path(seen.path).write_text(json.dumps({
        "declared": Path(data.path).read_text(), "undeclared": undeclared.exists(),
        "checkout": os.path.exists(checkout), "network": network, "uid": os.getuid(),
        "root_writable": root_writable, "checkpoints": os.access("/mnt/checkpoints", os.W_OK)}))


@dsl.pipeline(name="probe")
def probe(checkout: str):
    first = write()
    second = write().after(first)
    task = look(checkout=checkout, data=first.outputs["data"]).after(second)
    kubernetes.mount_pvc(task, pvc_name="faco-checkpoints", mount_path="/mnt/checkpoints")
    kubernetes.set_security_context(task, run_as_user=10001, run_as_group=10001, run_as_non_root=True)


if __name__ == "__main__":
    compiler.Compiler().compile(probe, sys.argv[2])
