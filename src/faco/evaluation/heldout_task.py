"""The lm-eval task class of the trained format (`heldout` and `<benchmark>@trained`; imported by the rendered
task YAMLs)."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from faco.evaluation.trained import process_results

__all__ = ["HeldoutTask", "process_results"]


class HeldoutTask(ConfigurableTask):
    """A multiple-choice task that also asks for a greedy reply to the same prompt.

    The options' log-likelihood requests come first (idx 0..k-1; none with `metadata.likelihood` false), the
    reply last, so `process_results` receives them in that order.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"})

    def construct_requests(self, doc: dict[str, Any], ctx: Any, **kwargs: Any) -> list[Instance]:
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        with_options = (self.config.metadata or {}).get("likelihood", True)
        requests = super().construct_requests(doc, ctx, **kwargs) if with_options else []
        assert isinstance(requests, list)
        reply = Instance(request_type="generate_until", doc=doc, idx=len(requests),
                         arguments=(ctx, deepcopy(self.config.generation_kwargs)), **kwargs)
        return [*requests, reply]
