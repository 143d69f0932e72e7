"""Test fake: makes the FAKE Kubernetes API server fixtures visible to the tests in tests/fakeapi."""

from .plugin import fake_api, fake_cli, fake_kube_env, fake_kubeconfig

__all__ = ["fake_api", "fake_cli", "fake_kube_env", "fake_kubeconfig"]
