"""homelab's table of contents: `doit list` shows these tasks; the work lives in src/homelab.

    doit                 converge every stage whose inputs changed (HOMELAB_ENV selects hosts/<env>.yaml)
    doit check           validate every input, print all problems
    doit plan            what would run and why, contacting nothing
"""

from homelab import tasks

DOIT_CONFIG = tasks.doit_config()


def task_check():
    """Validate inventories, releases and secrets; print every problem as `file: field: message (hint)`."""
    return tasks.check()


def task_plan():
    """Show every task that would run and why, naming the file and key that changed."""
    return tasks.plan()


def task_render():
    """Render every release to build/<env>/manifests/, validate it and check policy (offline)."""
    return tasks.render()


def task_charts():
    """Pull pinned remote charts into the chart cache and record their digests in charts.lock."""
    return tasks.charts()


def task_docs():
    """Regenerate docs/components.md and the DAG picture (docs/dag.dot, docs/dag.svg)."""
    return tasks.docs()


def task_host_stages():
    """Host stages from deploys/stages.yaml: vm -> tailscale -> k3s -> nfs (+ gpu, gaming)."""
    yield from tasks.host_stage_tasks()


def task_releases():
    """One task per releases/<name>/release.yaml, ordered by needs:."""
    yield from tasks.release_tasks()


def task_converge():
    """Converge everything whose inputs changed (the default task)."""
    return tasks.converge()


def task_sandbox_down():
    """Stop and remove the local sandbox hosts (sandbox environment only)."""
    return tasks.sandbox_down()


def task_sandbox_reset():
    """Wipe the sandbox hosts back to the base image (sandbox environment only)."""
    return tasks.sandbox_reset()
