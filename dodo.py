"""homelab's table of contents: `doit list` shows these tasks; the work lives in src/homelab.

    doit                 converge every stage whose inputs changed (HOMELAB_ENV selects hosts/<env>.yaml)
    doit check           validate every input, print all problems
    doit plan            what would run and why, contacting nothing
"""

from homelab import optasks, tasks

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


def task_post_deploy():
    """Work after a release is applied: ollama_models pulls the model list."""
    yield from tasks.post_deploy_tasks()


def task_converge():
    """Converge everything whose inputs changed (the default task)."""
    return tasks.converge()


def task_verify():
    """Read-only health report: testinfra checks and cluster checks, as an FR/NFR pass/fail table."""
    return tasks.verify()


def task_drift():
    """Read-only: live state against the last applied state; exit 2 on drift."""
    return tasks.drift()


def task_sandbox_down():
    """Stop and remove the local sandbox hosts (sandbox environment only)."""
    return tasks.sandbox_down()


def task_sandbox_reset():
    """Wipe the sandbox hosts back to the base image (sandbox environment only)."""
    return tasks.sandbox_reset()


# -- day-2 operations (always run; see docs/runbooks/) ------------------------------------------------

def task_gpu_gaming():
    """Gaming mode: vLLM scaled to 0, VRAM free, inference answered by Ollama on CPU."""
    return optasks.gpu_gaming()


def task_gpu_ml():
    """ML mode: vLLM restored and routed to again."""
    return optasks.gpu_ml()


def task_gpu_status():
    """The recorded GPU mode and vLLM replicas."""
    return optasks.gpu_status()


def task_ollama_health():
    """Health check: Ollama lists its model and answers a short prompt."""
    return optasks.ollama_health()


def task_pg_backup():
    """Run the PostgreSQL backup now and verify the dump."""
    return optasks.pg_backup()


def task_pg_restore():
    """Restore a dump into a database: doit pg_restore database=NAME [dump=FILE] [force=1]."""
    return optasks.pg_restore()


def task_pg_restore_drill():
    """Restore the newest dump into scratch databases and compare row counts."""
    return optasks.pg_restore_drill()


def task_etcd_snapshot():
    """Take a named etcd snapshot on the k3s server: doit etcd_snapshot [name=NAME]."""
    return optasks.etcd_snapshot()


def task_cluster_restore():
    """Reset-restore the cluster from a snapshot: doit cluster_restore snapshot=NAME [force=1]."""
    return optasks.cluster_restore()


def task_k3s_upgrade():
    """Rolling k3s upgrade to the pinned version: doit k3s_upgrade [version=...]."""
    return optasks.k3s_upgrade()


def task_k3s_rollback():
    """Reinstall the k3s version recorded before the last upgrade."""
    return optasks.k3s_rollback()


def task_node_remove():
    """Remove a node without data loss: doit node_remove node=NAME."""
    return optasks.node_remove()
