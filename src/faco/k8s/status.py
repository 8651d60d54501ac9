"""Job conditions -> outcome, and the lines that stream a job's progress."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Condition types that end a job, per API: (success, failure).
TERMINAL = {"PyTorchJob": ("Succeeded", "Failed"), "TrainJob": ("Complete", "Failed")}


@dataclass(frozen=True)
class Outcome:
    """Where a job stands: still running, succeeded, or failed with the job's reason."""

    done: bool
    succeeded: bool
    reason: str = ""
    message: str = ""


def conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


def outcome(job_api: str, obj: dict[str, Any]) -> Outcome:
    """The outcome of a job object from its `status.conditions` (a True terminal condition ends it)."""
    ok, bad = TERMINAL[job_api]
    for cond in conditions(obj):
        if cond.get("status") != "True":
            continue
        if cond.get("type") == bad:
            return Outcome(True, False, cond.get("reason") or "Failed", cond.get("message") or "")
        if cond.get("type") == ok:
            return Outcome(True, True, cond.get("reason") or ok, cond.get("message") or "")
    return Outcome(False, False)


def condition_key(cond: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(cond.get(k, "")) for k in ("type", "status", "reason", "lastTransitionTime"))


def new_condition_lines(seen: set[tuple[str, ...]], conds: Iterable[dict[str, Any]]) -> list[str]:
    """One line per condition not seen before (updates `seen`)."""
    lines = []
    for cond in conds:
        key = condition_key(cond)
        if key in seen:
            continue
        seen.add(key)
        msg = f": {cond['message']}" if cond.get("message") else ""
        lines.append(f"{cond.get('type')}={cond.get('status')} ({cond.get('reason', '')}){msg}")
    return lines
