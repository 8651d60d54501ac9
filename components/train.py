"""Train components: fine-tune on one split; continue from a model (recovery)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from faco import images


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def train(config_yaml: str, splits: Input[Dataset], ratio: float, model: Output[Model]):
    """Fine-tune the configured base model on the split of `ratio`."""
    from pathlib import Path

    from faco.config import parse_config
    from faco.stages import train as stage

    stage.run(parse_config(config_yaml, "config_yaml"), Path(splits.path), ratio, Path(model.path))


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def train_from(config_yaml: str, splits: Input[Dataset], start: Input[Model], ratio: float,
               model: Output[Model]):
    """Continue training `start` on the split of `ratio` (recovery: ratio 0)."""
    from pathlib import Path

    from faco.config import parse_config
    from faco.stages import train as stage

    study = parse_config(config_yaml, "config_yaml")
    stage.run(study, Path(splits.path), ratio, Path(model.path), start=Path(start.path))


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def recover(config_yaml: str, splits: Input[Dataset], models: Input[list[Model]], model: Output[Model]):
    """Recovery of a study: the model of `train.recovery.from_ratio`, retrained on the clean split."""
    from pathlib import Path

    from faco.config import parse_config
    from faco.kfp_glue import pick_by_ratio
    from faco.stages import train as stage

    study = parse_config(config_yaml, "config_yaml")
    assert study.train.recovery is not None, "recover runs only when the config asks for recovery"
    start = pick_by_ratio([Path(m.path) for m in models], study.train.recovery.from_ratio)
    stage.run(study, Path(splits.path), 0.0, Path(model.path), start=start)
