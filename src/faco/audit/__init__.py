"""Finding the false samples of an instruction-tuning set (`faco audit`, docs/audit.md).

`items` reads what to audit (a faco split, or a user's file in the custom-source schema); training
records each sample's dynamics (`faco.training.dynamics`); `detectors` score every sample, higher =
more suspicious; `ranking` ranks them and writes what a reviewer reads.
"""
