# The Makefile is the truth: `make demo` and `make test` must work on a fresh
# Debian/Ubuntu machine as root, installing everything they need by themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HAPROXY_MIN := 2.6

.PHONY: setup haproxy wrk h2load venv test lint typecheck unit demo bench bench-quick image clean

setup: haproxy venv

# HAProxy 2.6+ from the distribution, installed only when missing or too old.
haproxy:
	@if ! command -v haproxy >/dev/null 2>&1 || \
	    ! haproxy -v | head -1 | awk '{split($$3,v,"."); exit !((v[1]>2)||(v[1]==2&&v[2]>=6))}'; then \
	    echo "installing haproxy (>= $(HAPROXY_MIN)) with apt"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; \
	fi
	@# the distribution's service is not ours: we run our own HAProxy processes.
	@if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet haproxy 2>/dev/null; then \
	    systemctl stop haproxy || true; fi
	@haproxy -v | head -1

# wrk, the HTTP load generator of the benchmarks (Debian package).
wrk:
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk with apt"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

# h2load, the HTTP/2 and HTTP/1.1 load generator of benchmarks/protocols.py (Debian package).
h2load:
	@command -v h2load >/dev/null 2>&1 || { echo "installing nghttp2-client (h2load) with apt"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest -q tests/unit

test: setup lint typecheck
	$(PY) -m pytest -q

demo: setup
	$(PY) -m service_loadbalancer.demo

# About 25 minutes in all; `make bench-quick` is a short smoke run.
bench: setup wrk h2load
	$(PY) benchmarks/render.py
	$(PY) benchmarks/runtime.py
	$(PY) benchmarks/failures.py
	$(PY) benchmarks/kube_sync.py --outage 60
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/haproxy_memory.py
	$(PY) benchmarks/leader.py
	$(PY) benchmarks/ingress_lookup.py
	$(PY) benchmarks/protocols.py
	$(PY) benchmarks/autoscale.py
	$(PY) benchmarks/multicluster.py

bench-quick: setup wrk h2load
	$(PY) benchmarks/render.py --repeat 1
	$(PY) benchmarks/runtime.py --quick
	$(PY) benchmarks/failures.py --quick
	$(PY) benchmarks/kube_sync.py --runs 1 --outage 5
	$(PY) benchmarks/startup.py --quick
	$(PY) benchmarks/haproxy_memory.py --quick
	$(PY) benchmarks/leader.py --rounds 1
	$(PY) benchmarks/ingress_lookup.py --quick
	$(PY) benchmarks/protocols.py --quick
	$(PY) benchmarks/autoscale.py --quick
	$(PY) benchmarks/multicluster.py --quick

# The container image, service-loadbalancer:dev (deploy/Dockerfile), with podman (installed
# with apt when missing) or docker. The base, the wheels and the build cache are kept in
# build/image and the engine's storage: a second build takes seconds.
image: venv
	@PYTHON=$(PY) deploy/image/build.sh

clean:
	rm -rf $(VENV) build *.egg-info .demo
