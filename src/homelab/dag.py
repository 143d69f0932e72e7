"""The DAG picture: docs/dag.dot from the graph, docs/dag.svg through graphviz when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from homelab.atomic import write_text_atomic
from homelab.project import Project


def write(project: Project, out_dir: Path) -> list[Path]:
    dot = project.graph.to_dot()
    dot_path = out_dir / "dag.dot"
    write_text_atomic(dot_path, dot)
    written = [dot_path]
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True).stdout
        svg_path = out_dir / "dag.svg"
        svg_path.write_bytes(svg)
        written.append(svg_path)
    return written
