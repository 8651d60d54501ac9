"""A Trainer callback that simulates a killed process (tests of resume)."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class Crash(TrainerCallback):  # type: ignore[misc]
    """Raises KeyboardInterrupt after optimizer step `step`, as a kill at that point would end the run;
    with `after_save`, only once that step's checkpoint is saved (a kill before anything else runs)."""

    def __init__(self, step: int, after_save: bool = False) -> None:
        self.step = step
        self.after_save = after_save

    def _maybe(self, state: Any, saving: bool) -> None:
        if state.global_step == self.step and saving == self.after_save:
            raise KeyboardInterrupt(f"killed at step {self.step}" + (" after its checkpoint" if saving else ""))

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._maybe(state, saving=False)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._maybe(state, saving=True)
