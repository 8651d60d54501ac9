"""Report component: analysis -> the report folder, plus report.md and report.html as single files.

The KFP UI renders a Markdown or HTML artifact only when the artifact path is the file itself,
so those two are files; the folder (report.md, report.html, figures/, manifest.json) is the
separate `report` artifact.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def report(config_yaml: str, analysis: Input[Artifact], report: Output[Artifact], markdown: Output[Markdown],
           html: Output[HTML]):
    """Write the study report (Table 1, statistics, figures, lineage).

    Args:
        config_yaml: The resolved study config (plan's output).
        analysis: The analyze stage's artifact.
        report: The report folder: report.md, report.html, figures/ and the faco manifest.
        markdown: report.md as one file (rendered by the KFP UI).
        html: The self-contained report.html as one file (rendered by the KFP UI).
    """
    from pathlib import Path

    from faco.kfp_glue import write_report

    write_report(config_yaml, Path(analysis.path), Path(report.path), Path(markdown.path), Path(html.path))
