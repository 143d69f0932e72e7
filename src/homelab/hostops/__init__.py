"""Custom pyinfra facts and operations for the host stages (``deploys/<stage>``).

Every decision that depends on what a host is (a container with read-only ``vm.*`` sysctls, a sandbox
stand-in for Tailscale/k3s/NVIDIA/NFS, a cluster that already answers) is made here, in a fact or an
operation, so the deploy bodies stay straight lists of operations and each decision has a fixture test
(``tests/fixtures/hostops/<name>/<case>.json``).
"""
