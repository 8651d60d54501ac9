"""Which reasoning backend a config asks for (apart from `backends`, which every backend imports)."""

from __future__ import annotations

from faco.config import GenerateConfig
from faco.errors import ConfigError
from faco.generation.backends import ReasoningBackend, TemplateBackend


def get_backend(cfg: GenerateConfig) -> ReasoningBackend:
    """The backend the config asks for."""
    if cfg.backend == "template":
        return TemplateBackend(cfg.model)
    if cfg.backend == "openai":
        from faco.generation.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg)
    if cfg.backend == "transformers":
        from faco.generation.local_backend import TransformersBackend

        return TransformersBackend(cfg)
    raise ConfigError(f"generate.backend: unknown backend {cfg.backend!r}")
