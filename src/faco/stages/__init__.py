"""The study's stages: one plain function each, called by the CLI, DVC and KFP alike."""
