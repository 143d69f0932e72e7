"""Test fake: an in-memory FAKE Kubernetes API server for the homelab test suite.

Nothing here talks to a real cluster. :class:`FakeApiServer` serves enough of the Kubernetes REST API over
plain HTTP on 127.0.0.1 that the real ``kubectl``, ``helm`` and the ``kubernetes`` Python client work
against it, and simulates controllers (Deployments become ready, pods get scheduled, Jobs complete) in a way
tests can steer through a Python control API. See README.md beside this file for the control API, the
pytest fixtures (``plugin.py``) and the known gaps.
"""

from .server import FakeApiServer, RequestRecord
from .store import ApiError, Store

__all__ = ["ApiError", "FakeApiServer", "RequestRecord", "Store"]
