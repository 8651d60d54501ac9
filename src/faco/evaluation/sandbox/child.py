"""The sandbox's child side: confine this process, then run the untrusted program in it.

Run as `python -I -S child.py` with its SPEC on standard input (JSON: mode, limits, work dir, read-only
paths, uid, sentinel), by the parent in `faco.evaluation.sandbox`; imports only the standard library. In
order:

1. strict mode (PID 1 of fresh mount, PID, network, IPC and UTS namespaces made by `unshare`): a
   new root on an empty read-only tmpfs holding only the read-only binds (the interpreter and the
   shared libraries), /dev/{null,zero,urandom,random} and the work dir (a size-bounded tmpfs
   holding a copy of program.py, at the host work dir's path); no /proc, /etc,
   /home or /tmp of the host (only the directories leading to the binds); then `pivot_root`, and
   the old root is detached;
2. resource limits, including RLIMIT_NPROC;
3. no_new_privs; Landlock where the kernel has it: reads only beneath the read-only paths and the
   devices, writes only beneath the work dir (the weak mode needs it unless it runs as root);
4. when root on the host: every uid and gid set to the sandbox user (nobody); in a user namespace
   (faco not root) every capability is dropped; then the parent-death signal is (re-)armed (SIGKILL);
5. a seccomp filter: execve/execveat, fork/vfork/clone of a process, socket, kill/tkill, ptrace,
   mount, namespaces, modules, bpf, keyrings, SysV IPC and message queues, a new session or process
   group, clearing the parent-death signal, and every call that acts on another process (signals,
   resource limits, priorities, affinity, memory) fail with EPERM; tgkill, rt_(tg)sigqueueinfo,
   prlimit64, setpriority, ioprio_set and the sched_set* calls only on itself;
6. the program runs with `exec` in a fresh namespace; only when it returns (not on `sys.exit`,
   `os._exit` or a signal) is the run's secret sentinel written to stdout, which the parent requires
   for a pass.

Any failure before step 6 prints one `faco sandbox: ...` line to stderr and exits SETUP_FAILED.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import resource
import struct
import sys

SETUP_FAILED = 125

# x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
AUDIT_ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000
NR_CLONE, NR_CLONE3, NR_PRCTL = 56, 435, 157
DENIED = {
    "socket": 41, "fork": 57, "vfork": 58, "execve": 59, "kill": 62, "ptrace": 101, "personality": 135,
    "chroot": 161, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "pivot_root": 155, "init_module": 175, "delete_module": 176, "tkill": 200, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "execveat": 322,
    "userfaultfd": 323, "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "pidfd_open": 434, "mount_setattr": 442,
    # a new session or process group would leave the group the parent kills
    "setpgid": 109, "setsid": 112,
    # other processes: System V IPC, message queues, memory, handles
    "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "shmdt": 67,
    "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semtimedop": 220, "mq_open": 240,
    "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
    "migrate_pages": 256, "get_robust_list": 274, "move_pages": 279, "kcmp": 312, "pidfd_getfd": 438,
    "process_madvise": 440, "process_mrelease": 448,
}
SELF = -1  # stands for the child's own pid in SELF_ONLY
#: syscall -> ((argument index, allowed values), ...): every argument must hold one of its values
SELF_ONLY: dict[int, tuple[tuple[int, tuple[int, ...]], ...]] = {
    234: ((0, (SELF,)),),  # tgkill: signals to itself only (abort, faulthandler)
    129: ((0, (SELF,)),),  # rt_sigqueueinfo
    297: ((0, (SELF,)),),  # rt_tgsigqueueinfo
    302: ((0, (0, SELF)),),  # prlimit64: its own limits only
    141: ((0, (0,)), (1, (0, SELF))),  # setpriority: PRIO_PROCESS of itself (not PRIO_USER, PRIO_PGRP)
    251: ((0, (1,)), (1, (0, SELF))),  # ioprio_set: IOPRIO_WHO_PROCESS of itself
    142: ((0, (0, SELF)),),  # sched_setparam
    144: ((0, (0, SELF)),),  # sched_setscheduler
    203: ((0, (0, SELF)),),  # sched_setaffinity
    314: ((0, (0, SELF)),),  # sched_setattr
}
CLONE_THREAD = 0x00010000

# Landlock (same numbers on every architecture): the file-system rights of each ABI are bits 0..n-1
NR_LANDLOCK_CREATE_RULESET, NR_LANDLOCK_ADD_RULE, NR_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION, LANDLOCK_RULE_PATH_BENEATH = 1, 1
LANDLOCK_FS_RIGHTS = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}  # ABI -> number of rights (REFER, TRUNCATE, IOCTL_DEV)
LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 1, 1 << 2, 1 << 3

# mount(2) flags
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE = 16384, 1 << 18
ATIME_FLAGS = ((1024, 1024), (2048, 2048), (4096, 1 << 21))  # statvfs ST_* -> MS_NOATIME, NODIRATIME, RELATIME
MNT_DETACH = 2
DEVICES = ("null", "zero", "urandom", "random")

# seccomp / classic BPF
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
RET_KILL_PROCESS, RET_ERRNO, RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16  # argument i's low 32 bits at OFF_ARG0 + 8 * i

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """A confinement step failed: the program must not run."""


def _check(result: int, what: str) -> None:
    if result != 0:
        raise SetupError(f"{what}: {os.strerror(ctypes.get_errno())}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if s is None else os.fsencode(s) for s in (src, dst, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {dst}")


def _kept_flags(path: str) -> int:
    """The flags of the mount holding `path` that a bind mount must keep: in a user namespace they are
    locked (e.g. a container's nodev, noexec /dev), and a remount that drops one fails."""
    st = os.statvfs(path).f_flag
    kept = st & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)  # same bits in statvfs and mount(2)
    return kept | sum(ms for st_bit, ms in ATIME_FLAGS if st & st_bit)


def _bind(src: str, dst: str, flags: int) -> None:
    _mount(src, dst, None, MS_BIND | MS_REC)
    _mount(None, dst, None, MS_REMOUNT | MS_BIND | flags | _kept_flags(src))


def confine_filesystem(root: str, read_only: list[str], work: str, work_bytes: int, owner: int) -> None:
    """Build the new root in `root` (an empty dir) and pivot into it.

    The work dir there is a tmpfs of `work_bytes` owned by `owner`, holding a copy of program.py.
    """
    with open(os.path.join(work, "program.py"), "rb") as f:
        program = f.read()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in read_only:
        target = root + path
        if os.path.islink(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
        elif os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
            _bind(path, target, MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.makedirs(root + "/dev")
    for name in DEVICES:
        open(f"{root}/dev/{name}", "w").close()
        _bind(f"/dev/{name}", f"{root}/dev/{name}", MS_NOSUID)
    os.makedirs(root + work)
    _mount("tmpfs", root + work, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={work_bytes},mode=0700,uid={owner},gid={owner}")
    with open(os.path.join(root + work, "program.py"), "wb") as f:
        f.write(program)
    os.chdir(root)
    _check(_libc.syscall(DENIED["pivot_root"], b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def set_limits(limits: dict[str, int]) -> None:
    for name, value in (("RLIMIT_CPU", limits["cpu_s"]), ("RLIMIT_AS", limits["memory_bytes"]),
                        ("RLIMIT_FSIZE", limits["file_bytes"]), ("RLIMIT_NOFILE", limits["open_files"]),
                        ("RLIMIT_NPROC", limits["processes"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))


def _host_root() -> bool:
    """Root of the initial user namespace (the identity uid map), not root of a user namespace."""
    with open("/proc/self/uid_map") as f:
        return os.geteuid() == 0 and f.read().split() == ["0", "0", "4294967295"]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(host_root: bool, uid: int) -> None:
    """Become `uid` (host root), or lose every capability (root of a user namespace)."""
    if host_root:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    elif os.geteuid() == 0:
        data = (_CapData * 2)()
        _check(_libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where it has none."""
    return max(_libc.syscall(NR_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION), 0)


def restrict_filesystem(abi: int, read_only: list[str], work: str) -> None:
    """Landlock: read only `read_only` and the devices, write only beneath `work`; nothing else at all."""
    handled = (1 << LANDLOCK_FS_RIGHTS[min(abi, max(LANDLOCK_FS_RIGHTS))]) - 1
    ruleset = _libc.syscall(NR_LANDLOCK_CREATE_RULESET, struct.pack("Q", handled), 8, 0)
    if ruleset < 0:
        raise SetupError(f"landlock ruleset: {os.strerror(ctypes.get_errno())}")
    rules = [(p, LL_READ_FILE | LL_READ_DIR) for p in read_only if os.path.exists(p)]
    rules += [(f"/dev/{name}", LL_READ_FILE | LL_WRITE_FILE) for name in DEVICES] + [(work, handled)]
    try:
        for path, access in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = struct.pack("=Qi", access, fd)
                _check(_libc.syscall(NR_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, rule, 0),
                       f"landlock rule {path}")
            finally:
                os.close(fd)
        _check(_libc.syscall(NR_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock")
    finally:
        os.close(ruleset)


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def _only(rules: tuple[tuple[int, tuple[int, ...]], ...], pid: int) -> list[bytes]:
    """A block for the syscall already matched: allow when every argument holds one of its values."""
    eperm = RET_ERRNO | errno.EPERM
    size = sum(2 + len(values) for _, values in rules)  # load, one test per value, deny
    out: list[bytes] = []
    for arg, values in rules:
        out.append(_insn(LD_ABS, OFF_ARG0 + 8 * arg))
        after = len(out) + len(values) + 1  # the next rule's load, or the allow after the last deny
        for value in values:
            out.append(_insn(JEQ, pid if value == SELF else value, after - len(out) - 1, 0))
        out.append(_insn(RET, eperm))
    assert len(out) == size
    return [*out, _insn(RET, RET_ALLOW)]


def seccomp_program(pid: int) -> bytes:
    """The classic-BPF filter: deny what a test program never needs (see the module docstring)."""
    eperm = RET_ERRNO | errno.EPERM
    prog = [
        _insn(LD_ABS, OFF_ARCH), _insn(JEQ, AUDIT_ARCH_X86_64, 1, 0), _insn(RET, RET_KILL_PROCESS),
        _insn(LD_ABS, OFF_NR), _insn(JGE, X32_BIT, 0, 1), _insn(RET, RET_KILL_PROCESS),
        # clone: threads only; clone3 (flags out of reach in memory) -> ENOSYS, so libc falls back to clone
        _insn(JEQ, NR_CLONE, 0, 4), _insn(LD_ABS, OFF_ARG0), _insn(JSET, CLONE_THREAD, 0, 1),
        _insn(RET, RET_ALLOW), _insn(RET, eperm),
        _insn(JEQ, NR_CLONE3, 0, 1), _insn(RET, RET_ERRNO | errno.ENOSYS),
        # prctl: anything but clearing or changing the parent-death signal
        _insn(JEQ, NR_PRCTL, 0, 4), _insn(LD_ABS, OFF_ARG0), _insn(JEQ, PR_SET_PDEATHSIG, 0, 1),
        _insn(RET, eperm), _insn(RET, RET_ALLOW),
    ]
    for nr, rules in sorted(SELF_ONLY.items()):
        block = _only(rules, pid)
        prog += [_insn(JEQ, nr, 0, len(block)), *block]
    for nr in sorted(DENIED.values()):
        prog += [_insn(JEQ, nr, 0, 1), _insn(RET, eperm)]
    return b"".join([*prog, _insn(RET, RET_ALLOW)])


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install_seccomp() -> None:
    if platform.machine() != "x86_64":
        raise SetupError(f"seccomp filter: only x86_64 is supported, not {platform.machine()}")
    prog = seccomp_program(os.getpid())
    fprog = _SockFprog(len(prog) // 8, prog)
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp filter")


def _confine(spec: dict) -> None:
    """Steps 1-5; the program must not run if any fails."""
    work = spec["work"]
    os.umask(0o022)  # the new root's directories must let the sandbox user through
    host_root = _host_root()
    parent = os.getppid()
    if spec["mode"] == "strict":
        confine_filesystem(spec["root"], spec["read_only"], work, spec["limits"]["work_bytes"],
                           spec["uid"] if host_root else 0)
    os.chdir(work)
    set_limits(spec["limits"])
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    abi = landlock_abi()
    if abi:
        restrict_filesystem(abi, spec["read_only"], work)
    elif spec["mode"] == "weak" and not host_root:
        raise SetupError("weak mode needs root (to run the program as nobody) or Landlock (Linux 5.13+), "
                         "else the program could read faco's own environment")
    drop_privileges(host_root, spec["uid"])
    # a change of uid clears the parent-death signal: arm it now that the uid is final
    _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "parent-death signal")
    if os.getppid() != parent:  # the parent died before the signal was armed
        raise SetupError("the parent exited")
    install_seccomp()


def main(spec: dict) -> None:
    sentinel = str(spec.pop("sentinel"))
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the spec was read from stdin; the program gets nothing there
        os.close(devnull)
        _confine(spec)
    except (OSError, SetupError) as exc:
        print(f"faco sandbox: {exc}", file=sys.stderr)
        sys.exit(SETUP_FAILED)
    sys.dont_write_bytecode = True
    with open("program.py") as f:
        source = f.read()
    exec(compile(source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, f"\n{sentinel}\n".encode())  # reached only when the program returned
    os._exit(0)


if __name__ == "__main__":
    main(json.loads(sys.stdin.buffer.read()))
