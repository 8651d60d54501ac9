"""The FACO sources: adapters from hub rows (and the offline mirror) to SourceRecord."""

from faco.sources.registry import SOURCES, SourceAdapter

__all__ = ["SOURCES", "SourceAdapter"]
