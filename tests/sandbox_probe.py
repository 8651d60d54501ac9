"""Run the sandbox's attack programs where a pod runs them; print one JSON object of what happened.

`python sandbox_probe.py MODE` with `src/` on PYTHONPATH, standard library only (it also runs in a
bare `python:3.11-slim` container as UID 10001). MODE is a `FACO_SANDBOX` value. The programs attack
this process (their parent) and `victim`, another process of the same user, the way issue 23 did:
signals through rt_(tg)sigqueueinfo, prlimit64 on the parent's open-file limit, setpriority and
affinity on the parent and the whole user; one outlives its timeout (setsid, parent-death signal
cleared); two exit with status 0 before their end. Used by tests/test_sandbox_pod.py.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

from faco.evaluation import sandbox

LIMITS = sandbox.Limits(cpu_s=2, wall_s=4.0, memory_bytes=512 << 20, work_bytes=16 << 20)
SURVIVOR = "faco-survivor"


def attacks(victim: int) -> str:
    """A program that tries each attack on its parent and on `victim`, printing `RESULT name rc errno`."""
    return f"""
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
parent, victim = os.getppid(), {victim}
info = ctypes.create_string_buffer(struct.pack("iii", 0, 0, -1) + bytes(116))  # si_code SI_QUEUE
mask = (ctypes.c_ulong * 16)(1)
def attempt(name, rc):
    print("RESULT", name, rc, ctypes.get_errno() if rc == -1 else 0, flush=True)
for target in (victim, parent):
    struct.pack_into("i", info, 0, 9)
    attempt(f"rt_sigqueueinfo:{{target == parent}}", libc.syscall(129, target, 9, info))
    attempt(f"rt_tgsigqueueinfo:{{target == parent}}", libc.syscall(297, target, target, 9, info))
    attempt(f"kill:{{target == parent}}", libc.syscall(62, target, 9))
attempt("prlimit64", libc.syscall(302, parent, 7, struct.pack("QQ", 3, 3), None))
attempt("setpriority:process", libc.syscall(141, 0, parent, 19))
attempt("setpriority:user", libc.syscall(141, 2, 0, 19))
attempt("sched_setaffinity", libc.syscall(203, parent, ctypes.sizeof(mask), mask))
attempt("ioprio_set:user", libc.syscall(251, 3, 0, (3 << 13) | 7))
attempt("prlimit64:self", libc.syscall(302, 0, 7, None, ctypes.create_string_buffer(16)))
"""


OUTLIVE = f"""
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(15, b"{SURVIVOR}", 0, 0, 0)  # PR_SET_NAME: how the probe finds it
print("RESULT setsid", libc.setsid(), ctypes.get_errno(), flush=True)
print("RESULT pdeathsig", libc.prctl(1, 0, 0, 0, 0), ctypes.get_errno(), flush=True)
held = bytearray(64 << 20)
time.sleep(3600)
"""

EARLY_EXITS = {
    "returns": "def check():\n    assert 1 + 1 == 2\ncheck()\n",
    "sys.exit": "import sys\nsys.exit(0)\ndef check():\n    assert False\ncheck()\n",
    "os._exit": "import os\nos._exit(0)\ndef check():\n    assert False\ncheck()\n",
    "forged sentinel": "print('faco-sandbox-returned-' + '0' * 32)\nimport os\nos._exit(0)\n",
}


def survivors() -> list[int]:
    """Live (not zombie) processes named SURVIVOR."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
        if name == SURVIVOR and state != "Z":
            found.append(int(pid))
    return found


def until_gone(deadline_s: float = 10.0) -> list[int]:
    """The survivors still alive after waiting up to `deadline_s` for SIGKILLs to land."""
    end = time.monotonic() + deadline_s
    while survivors() and time.monotonic() < end:
        time.sleep(0.1)
    return survivors()


def results(output: str) -> dict[str, list[int]]:
    return {line.split()[1]: [int(x) for x in line.split()[2:4]] for line in output.splitlines()
            if line.startswith("RESULT ")}


def probe(mode: str) -> dict[str, object]:
    os.environ[sandbox.MODE_ENV] = mode
    os.environ[sandbox.ALLOW_ENV] = "1"
    report: dict[str, object] = {"uid": os.getuid(), "landlock": sandbox.landlock_abi()}
    try:
        report["describe"] = sandbox.describe()
    except sandbox.SandboxUnavailable as exc:
        report["unavailable"] = str(exc)
        return report
    victim = subprocess.Popen(["sleep", "60"])
    nofile, nice, cpus = resource.getrlimit(resource.RLIMIT_NOFILE), os.getpriority(os.PRIO_PROCESS, 0), \
        os.sched_getaffinity(0)
    try:
        run = sandbox.run_python(attacks(victim.pid), LIMITS)
        report["attacks"] = {"status": run.status, "results": results(run.stdout), "stderr": run.stderr[-500:]}
        report["victim_alive"] = victim.poll() is None
        report["parent_unchanged"] = (resource.getrlimit(resource.RLIMIT_NOFILE) == nofile
                                      and os.getpriority(os.PRIO_PROCESS, 0) == nice
                                      and os.sched_getaffinity(0) == cpus)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    run = sandbox.run_python(OUTLIVE, LIMITS)
    report["outlive"] = {"status": run.status, "results": results(run.stdout), "survivors": until_gone()}
    for pid in survivors():  # a defect, reported above: do not leave it running
        os.kill(pid, signal.SIGKILL)
    report["early_exits"] = {name: sandbox.run_python(code, LIMITS).status for name, code in EARLY_EXITS.items()}
    return report


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
