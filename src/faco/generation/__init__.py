"""Reasoning-chain generation: prompts, backends and the true/false pairing logic."""
