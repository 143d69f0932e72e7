"""Day-2 operations: actions an operator runs against a converged lab (GPU modes, PostgreSQL backup and
restore, K3s and node maintenance). Each module owns its operation; this package file stays a docstring so
independent operations never collide here.
"""
