"""KFP components: one file per stage, each a thin call into `faco.stages`."""
