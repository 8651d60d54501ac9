"""A Trainer callback that simulates a killed process (tests of resume)."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class Crash(TrainerCallback):  # type: ignore[misc]
    """Raises KeyboardInterrupt after optimizer step `step`, as a kill at that point would end the run."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


class CrashAfterSave(TrainerCallback):  # type: ignore[misc]
    """Raises KeyboardInterrupt once the checkpoint of optimizer step `step` is saved, before anything else."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed after saving checkpoint-{self.step}")
