"""The sandbox where the pipeline's pods run it: as UID 10001, no capabilities, a read-only root, no
network, under the container runtime's default seccomp profile (issue 19 item 5, issue 23 items 4-6).

Each test runs tests/sandbox_probe.py (standard library only) and checks what its attack programs
achieved: the parent and another process of the same user keep running with their limits, priority
and affinity; a program that makes itself a new session and clears its parent-death signal does not
outlive its timeout; `sys.exit(0)` / `os._exit(0)` before the checks is no pass.

- on this machine as UID 10001 (setpriv, when the tests run as root), in the weak mode;
- in a container (podman, the bare `python:3.11` image) with podman's default seccomp profile, and
  with Kubernetes' `RuntimeDefault` (containerd's profile: no `unshare`, `mount`, `setns` or
  namespace flags to `clone` without CAP_SYS_ADMIN), where strict mode must refuse and the pipeline's
  mode for `evaluate_untrusted` (auto) runs the weak mode, Landlock-confined.
Skipped, saying why, where podman or the image is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from faco.k8s.settings import POD_SANDBOX_MODE

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "sandbox_probe.py"
IMAGE = os.environ.get("FACO_TEST_PYTHON_IMAGE", "docker.io/library/python:3.11.14-slim-bookworm")
POD_USER = "10001"
PODMAN_DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")
# containerd's RuntimeDefault allows these only with CAP_SYS_ADMIN, which a pod does not have
ADMIN_ONLY = {"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
              "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "perf_event_open",
              "pivot_root", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
              "umount2", "unshare"}
CLONE_NEW_ANY = 0x7E020000  # CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP


def _check(report: dict[str, Any]) -> None:
    """What the probe's report must show for a mode that ran."""
    assert report["uid"] == int(POD_USER) and "unavailable" not in report, report
    mode = "weak" if "weak mode" in report["describe"] else "strict"
    attacks = report["attacks"]
    assert attacks["status"] == "passed", attacks
    assert report["victim_alive"] and report["parent_unchanged"], report
    other = {k: v for k, v in attacks["results"].items() if k != "prlimit64:self"}
    if mode == "weak":  # no PID namespace: only the seccomp filter stands between it and its parent
        assert other and all(v == [-1, 1] for v in other.values()), other  # EPERM, every one
    assert attacks["results"]["prlimit64:self"] == [0, 0]  # its own limits stay readable
    assert report["outlive"]["status"] == "timeout" and report["outlive"]["survivors"] == [], report["outlive"]
    assert report["early_exits"] == {"returns": "passed", "sys.exit": "exited", "os._exit": "exited",
                                     "forged sentinel": "exited"}


def _run_probe(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_weak_mode_as_the_pod_user_on_this_machine() -> None:
    """The pod's mode (weak: no namespaces, Landlock, seccomp) as a non-root user, on the host kernel."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or shutil.which("setpriv") is None or python is None:
        pytest.skip("needs root (to become UID 10001 with setpriv) and a system python3")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "LANG": "C.UTF-8"}
    report = _run_probe(["setpriv", f"--reuid={POD_USER}", f"--regid={POD_USER}", "--clear-groups", python,
                         str(PROBE), "weak"], env)
    if not report["landlock"]:
        pytest.skip("this kernel has no Landlock: the weak mode refuses a non-root user")
    _check(report)


def kubernetes_profile(podman_default: dict[str, Any]) -> dict[str, Any]:
    """podman's default profile less what containerd's RuntimeDefault grants only with CAP_SYS_ADMIN;
    `clone` only without namespace flags, `clone3` ENOSYS (containerd's own rules for them)."""
    profile = json.loads(json.dumps(podman_default))
    for rule in profile["syscalls"]:
        if not (rule.get("includes") or {}).get("caps"):
            rule["names"] = [n for n in rule["names"] if n not in ADMIN_ONLY]
    profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
    profile["syscalls"] += [
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": CLONE_NEW_ANY, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ]
    return dict(profile)


def _podman(mode: str, seccomp: Path | None) -> dict[str, Any]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    if subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True).returncode != 0:
        pytest.skip(f"image {IMAGE} is missing (docs/evaluation.md#the-sandbox-in-a-pod)")
    security = ["--security-opt", f"seccomp={seccomp}"] if seccomp else []
    return _run_probe([
        "podman", "run", "--rm", f"--user={POD_USER}:{POD_USER}", "--read-only", "--tmpfs", "/tmp",
        "--network=none", "--cap-drop=all", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
        *security, "-v", f"{ROOT / 'src'}:/src:ro", "-v", f"{PROBE}:/probe/sandbox_probe.py:ro",
        "-e", "PYTHONPATH=/src", "-w", "/tmp", IMAGE, "python", "/probe/sandbox_probe.py", mode])


@pytest.mark.parametrize("mode", ["weak", "strict", "auto"])
def test_in_a_container_with_podmans_default_seccomp(mode: str) -> None:
    """podman's default profile allows user namespaces: both modes run, and both contain; auto is strict."""
    report = _podman(mode, None)
    _check(report)
    assert ("weak mode" in report["describe"]) == (mode == "weak")


@pytest.fixture
def kubernetes_seccomp(tmp_path: Path) -> Path:
    if not PODMAN_DEFAULT_PROFILE.is_file():
        pytest.skip(f"no {PODMAN_DEFAULT_PROFILE} to derive Kubernetes' RuntimeDefault from")
    path = tmp_path / "runtime-default.json"
    path.write_text(json.dumps(kubernetes_profile(json.loads(PODMAN_DEFAULT_PROFILE.read_text()))))
    path.chmod(0o644)
    return path


def test_in_a_container_with_kubernetes_runtime_default_seccomp(kubernetes_seccomp: Path) -> None:
    """What a pod gets: strict mode cannot make namespaces and refuses (naming FACO_SANDBOX=weak); the
    mode the pipeline sets for `evaluate_untrusted` (auto) runs the weak mode, Landlock-confined, and contains."""
    strict = _podman("strict", kubernetes_seccomp)
    assert "cannot isolate model-written code" in strict["unavailable"] and "FACO_SANDBOX=weak" in strict["unavailable"]
    pod = _podman(POD_SANDBOX_MODE, kubernetes_seccomp)
    assert pod["landlock"], pod
    assert f"weak mode (FACO_SANDBOX={POD_SANDBOX_MODE}): no namespaces, Landlock" in pod["describe"]
    _check(pod)
