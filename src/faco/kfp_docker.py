"""Run a compiled pipeline as a cluster runs it: every task in a fresh container of its image,
seeing only the input artifacts it declares (`faco kfp run --local --docker`).

kfp.local's DockerRunner runs each task in its image but mounts the one shared pipeline root into
every container, so a task could read any other task's files. Here each task gets a private
pipeline root instead, mounted at the same path: it holds copies of the task's declared input
artifacts only (owned by the task's user, as a pod's launcher downloads them), and the task's
declared outputs (artifacts, output parameters, executor output) are copied back when it ends.
The container is shaped like the task's pod (`faco.pod_spec`): the package's security context,
PVC mounts (a per-run folder per claim) and emptyDirs, a read-only root with /tmp and HOME in
memory, all capabilities dropped and, unless asked, no network. Works with any engine that speaks
Docker's API: Docker, or podman's `podman system service` (docs/kubeflow.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faco import images
from faco.errors import FacoError
from faco.pod_spec import Pod, pods, task_images

#: Label of every task container, valued with the run's pipeline root (find leftovers of a killed run with
#: `podman ps -a --filter label=faco.dev/kfp-local-root=<root>`).
RUN_LABEL = "faco.dev/kfp-local-root"


def local_images() -> dict[str, str]:
    """Pipeline image -> the local image that runs it: the CPU image as built, the train image's CPU
    build (docker/Dockerfile.train-cpu) for the train image; `make images` builds both."""
    return {images.CPU.ref: f"{images.CPU.repository}:{images.CPU.tag}",
            images.TRAIN.ref: f"{images.TRAIN.repository}:{images.TRAIN.tag}-cpu"}


def engine() -> Any:
    """A docker-py client of the engine at $DOCKER_HOST (default: Docker's socket), checked alive."""
    try:
        from docker.client import DockerClient
    except ImportError:
        raise FacoError("--docker needs the docker package: pip install docker") from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = DockerClient.from_env()
        client.ping()
    except Exception:
        raise FacoError(f"no container engine answers at {where}: start Docker, or podman's Docker API "
                        "(`podman system service --time=0 unix:///run/podman/podman.sock &` and "
                        "DOCKER_HOST=unix:///run/podman/podman.sock; docs/kubeflow.md)") from None
    return client


def declared(executor_input: dict[str, Any]) -> tuple[list[Path], list[Path]]:
    """(input artifact paths, output paths) a task declares in its executor input."""
    inputs = [Path(a["uri"]) for group in executor_input.get("inputs", {}).get("artifacts", {}).values()
              for a in group.get("artifacts", [])]
    out = executor_input["outputs"]
    outputs = [Path(a["uri"]) for group in out.get("artifacts", {}).values() for a in group.get("artifacts", [])]
    outputs += [Path(p["outputFile"]) for p in out.get("parameters", {}).values()]
    return inputs, [*outputs, Path(out["outputFile"])]


def executor_input(command: list[str]) -> dict[str, Any]:
    """The executor input JSON kfp.local substituted into a task's command (`--executor_input`)."""
    try:
        data: dict[str, Any] = json.loads(command[command.index("--executor_input") + 1])
    except (ValueError, IndexError):
        raise FacoError("a task's command has no --executor_input: only KFP Python components run "
                        "isolated") from None
    return data


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    elif src.exists():
        shutil.copy2(src, dst)


def _chown(path: Path, owner: tuple[int, int] | None) -> None:
    """Give `path` (recursively) to the task's user, as a pod's launcher writes its inputs; without
    root (an engine used from a user account), make a folder writable by all instead."""
    if os.geteuid() != 0 or owner is None:
        if path.is_dir():
            path.chmod(0o1777)
        return
    os.chown(path, *owner)
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(base, name), *owner, follow_symlinks=False)


def stage(root: Path, private: Path, inputs: list[Path], outputs: list[Path],
          owner: tuple[int, int] | None) -> dict[str, dict[str, str]]:
    """Fill `private` (the task's pipeline root) with copies of its inputs that live under `root`, and
    make its output folders; returns read-only binds for inputs elsewhere (an importer's URI)."""
    binds = {}
    for path in inputs:
        if path.is_relative_to(root):
            _copy(path, private / path.relative_to(root))
            _chown(private / path.relative_to(root), owner)
        else:
            binds[str(path)] = {"bind": str(path), "mode": "ro"}
    for path in outputs:
        folder = private / path.parent.relative_to(root)
        folder.mkdir(parents=True, exist_ok=True)
        _chown(folder, owner)
    return binds


def collect(root: Path, private: Path, outputs: list[Path]) -> None:
    """Copy a finished task's declared outputs from its private root back to the shared one."""
    for path in outputs:
        _copy(private / path.relative_to(root), path)


def _owner(user: str | None) -> tuple[int, int] | None:
    if not user or not user.split(":")[0].isdigit():
        return None
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def _shm_bytes(limit: str) -> int:
    """A Kubernetes quantity ("64Gi", "512Mi") in bytes; 1 GiB when unset."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if limit.endswith(suffix):
            return int(float(limit[: -len(suffix)]) * factor)
    return int(limit) if limit.isdigit() else 2**30


def container_args(pod: Pod, home: str, claims: Path, network: bool, run: str) -> dict[str, Any]:
    """docker-py `containers.run` arguments that shape a task's container like its pod; each PVC is a
    folder under `claims`; `run` labels the container (RUN_LABEL)."""
    binds = {}
    for claim, mount in pod.claims.items():
        host = claims / claim
        host.mkdir(parents=True, exist_ok=True)
        _chown(host, _owner(pod.user))
        binds[str(host)] = {"bind": mount, "mode": "rw"}
    tmpfs = {"/tmp": "", home: "", **{m: "" for m in pod.memory if m != "/dev/shm"}}
    args: dict[str, Any] = {"volumes": binds, "tmpfs": tmpfs, "read_only": True, "cap_drop": ["ALL"],
                            "security_opt": ["no-new-privileges"], "labels": {**pod.labels, RUN_LABEL: run},
                            "shm_size": _shm_bytes(pod.memory.get("/dev/shm", ""))}
    if pod.user:
        args["user"] = pod.user
    if not network:
        args["network_mode"] = "none"
    return args


def _home(client: Any, image: str) -> str:
    env = dict(e.split("=", 1) for e in client.images.get(image).attrs["Config"].get("Env") or [] if "=" in e)
    return env.get("HOME", "/root")


def run_container(client: Any, image: str, command: list[str], env: dict[str, str], args: dict[str, Any],
                  log: Path) -> int:
    """Run one task's container to its end, its log streamed to stdout and into `log`; returns the exit code.

    Without auto-remove: kfp 2.17 starts containers with `auto_remove=True` and then asks for logs
    and exit code, which podman 4.3 answers for a removed container with HTTP 500 where Docker says
    404, so kfp crashes (no upstream issue found). Removed here once both are read.
    """
    from docker.errors import APIError

    container = client.containers.run(image=image, command=command, environment=env, detach=True, **args)
    try:
        with log.open("w") as fh:
            for chunk in container.logs(stream=True, follow=True):
                text = chunk.decode(errors="replace")
                print(text, end="")
                fh.write(text)
        return int(container.wait()["StatusCode"])
    finally:
        with contextlib.suppress(APIError):  # already removed (Ctrl-C: `remove_containers`)
            container.remove(force=True)


class Isolation:
    """One run's settings: its pipeline root, which local image runs each pipeline image, each task's
    pod and whether tasks get a network. Under `<root>/.volumes/`: `claims/<claim>` (the PVCs) and
    `tasks/` (the tasks' private roots)."""

    def __init__(self, root: Path, image_map: dict[str, str], task_pods: dict[str, Pod], network: bool = False
                 ) -> None:
        self.root, self.image_map, self.pods, self.network = root, image_map, task_pods, network
        self.claims, self.tasks = root / ".volumes" / "claims", root / ".volumes" / "tasks"
        self.tasks.mkdir(parents=True, exist_ok=True)
        self.stopped = False  # set on Ctrl-C: no task starts after it

    def run_task(self, image: str, command: list[str], env: dict[str, str]) -> int:
        """Run one task in a private pipeline root holding only its declared inputs; returns its exit code."""
        import tempfile

        inputs, outputs = declared(executor_input(command))
        task = outputs[-1].parent.name  # the folder of executor_output.json: the component's name
        pod = self.pods.get(task, Pod())
        client = engine()
        try:
            local = self.image_map.get(image, image)
            args = container_args(pod, _home(client, local), self.claims, self.network, str(self.root))
            private = Path(tempfile.mkdtemp(prefix=f"{task}-", dir=self.tasks))
            private.chmod(0o755)  # the mount point of the task's root: its user must enter it
            args["volumes"].update(stage(self.root, private, inputs, outputs, _owner(pod.user)))
            args["volumes"][str(private)] = {"bind": str(self.root), "mode": "rw"}
            if self.stopped:  # raised, not returned: kfp.local would retry a failed task after a pause
                raise KeyboardInterrupt
            code = run_container(client, local, command, env, args, private / "task.log")
            if self.stopped:
                raise KeyboardInterrupt
            if code == 0:
                collect(self.root, private, outputs)
                shutil.rmtree(private)
            else:
                print(f"task {task} failed; its private pipeline root and task.log are kept: {private}")
            return code
        finally:
            client.close()


@contextlib.contextmanager
def isolated_tasks(isolation: Isolation) -> Iterator[None]:
    """While open, kfp.local's DockerRunner runs tasks through `isolation`.

    kfp 2.17 picks the task handler by the runner's exact type from a table built at each call
    (`task_dispatcher.run_single_task_implementation`), with no hook: the module attribute it reads
    is swapped here and restored after.
    """
    from kfp.local import docker_task_handler, status

    original = docker_task_handler.DockerTaskHandler

    class Isolated(original):  # type: ignore[misc,valid-type]
        def run(self) -> status.Status:
            code = isolation.run_task(self.image, self.full_command, self.env_vars)
            return status.Status.SUCCESS if code == 0 else status.Status.FAILURE

    docker_task_handler.DockerTaskHandler = Isolated
    try:
        yield
    finally:
        docker_task_handler.DockerTaskHandler = original


def missing_images(client: Any, package_text: str, image_map: dict[str, str]) -> list[str]:
    """The local images a package's tasks need that the engine does not have."""
    from docker.errors import ImageNotFound

    missing = []
    for image in sorted(task_images(package_text)):
        local = image_map.get(image, image)
        try:
            client.images.get(local)
        except ImageNotFound:
            missing.append(local)
    return missing


def remove_containers(root: Path) -> int:
    """Remove every container of the run under pipeline root `root` (RUN_LABEL); returns how many."""
    client = engine()
    try:
        found = client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={root}"})
        for container in found:
            container.remove(force=True)
        return len(found)
    finally:
        client.close()


@contextlib.contextmanager
def removed_on_interrupt(isolation: Isolation) -> Iterator[None]:
    """Ctrl-C (SIGINT) stops the run: no task starts any more and the running tasks' containers are
    removed, so kfp.local's threads end, then interrupts as usual (exit 130); without this the run
    would wait for its running tasks. An ignored SIGINT (a background job of a non-interactive shell)
    stays ignored, as everywhere in faco."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return

    def interrupted(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous)
        isolation.stopped = True
        remove_containers(isolation.root)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_package(package: Path, arguments: dict[str, Any], pipeline_root: Path, *,
                image_map: dict[str, str] | None = None, network: bool = False, caching: bool = False) -> Path:
    """Run a compiled pipeline with every task isolated in a container; returns the run's folder.

    `image_map`: pipeline image -> local image (default `local_images()`); images are never pulled.
    The PVCs' folders and the tasks' private roots are under `<pipeline_root>/.volumes/` (`Isolation`).
    """
    from kfp import components, local

    text = package.read_text()
    client = engine()
    image_map = image_map or local_images()
    missing = missing_images(client, text, image_map)
    client.close()
    if missing:
        raise FacoError(f"{package}: image(s) {', '.join(missing)} not built here (nothing is pulled): "
                        "run `make images`")
    root = pipeline_root.resolve()
    isolation = Isolation(root, image_map, pods(text), network)
    before = set(root.iterdir())
    local.init(runner=local.DockerRunner(), pipeline_root=str(root), enable_caching=caching)
    with isolated_tasks(isolation), removed_on_interrupt(isolation):
        try:
            components.load_component_from_text(text)(**arguments)
        except RuntimeError as e:
            raise FacoError(f"{package.name}: {e} (the task's log is above)") from None
    new = sorted((p for p in set(root.iterdir()) - before if not p.name.startswith(".")),
                 key=lambda p: p.stat().st_mtime)
    if not new:
        raise FacoError(f"kfp.local wrote no run under {root}")
    return new[-1]
