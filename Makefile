# Two commands on a fresh machine: `make setup`, then `make test` (see README.md).
VENV     ?= .venv
PY       := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

APT_PACKAGES := mmdebstrap systemd-container iproute2 openssh-client dpkg-dev graphviz nginx-light postgresql

.PHONY: setup venv apt-packages kube-binaries sandbox-image test lint typecheck unit bench clean

setup: apt-packages venv kube-binaries sandbox-image
	@echo "setup complete: run 'make test'"

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The sandbox needs these on the build machine. Never apt-install kubernetes-client (dpkg conflict).
apt-packages:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	else echo "apt-packages: not root; install yourself: $(APT_PACKAGES)"; fi

kube-binaries: venv
	$(PY) -m homelab.tools.kube_binaries $(VENV)/bin

# Cached Debian base image + local apt repo for the sandbox hosts (root only; skipped with a message otherwise).
sandbox-image: venv
	@if [ "$$(id -u)" = 0 ]; then $(PY) -m homelab.sandbox image; \
	else echo "sandbox-image: needs root; the sandbox tests will be skipped"; fi

lint: venv
	$(VENV)/bin/ruff check src tests deploys bench dodo.py

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q -m "not sandbox and not live"

test: lint typecheck
	$(VENV)/bin/pytest -q

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
