"""Report component: analysis -> the report, as a Markdown and an HTML artifact."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def report(config_yaml: str, analysis: Input[Artifact], markdown: Output[Markdown], html: Output[HTML]):
    """The report directory (report.md, report.html, figures/) is both artifacts' content."""
    import shutil
    from pathlib import Path

    from faco.config import parse_config
    from faco.stages import report as stage

    out = stage.run(parse_config(config_yaml, "config_yaml"), Path(analysis.path), Path(markdown.path))
    shutil.copytree(out, html.path, dirs_exist_ok=True)
