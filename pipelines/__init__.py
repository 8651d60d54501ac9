"""KFP v2 pipelines of faco; each module has `build(settings) -> pipeline`."""
