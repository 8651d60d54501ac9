"""Paper 001's judge: probe answers sampled from a model, scored by an LLM judge (emergent-misalignment protocol)."""
