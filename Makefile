# The README's two commands: `make run` and `make test`. Each bootstraps its own virtualenv:
# `make run` a small one with the server alone (RUN_VENV), the rest .venv with the dev toolchain.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_VENV ?= .venv-run
RUN_STAMP := $(RUN_VENV)/.installed
DIST ?= dist
DATADIR ?= .data
HOST ?= localhost
PORT ?= 3141

.PHONY: run test lint typecheck unit bench dist clean
.PHONY: docker-lint docker-build docker-build-alpine docker-tag docker-push

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# `make run`'s own venv: the server extra only (about 140 MB; .venv is over 900 MB), editable so
# a code change shows at the next start. uv, installed into it by pip, halves the install
# (README); pip alone (which reads pip.conf, uv does not) takes over when uv fails.
$(RUN_STAMP): pyproject.toml
	test -x $(RUN_VENV)/bin/python || $(PYTHON) -m venv $(RUN_VENV)
	{ $(RUN_VENV)/bin/python -m pip install -q --disable-pip-version-check uv && \
	  $(RUN_VENV)/bin/uv pip install -q --python $(RUN_VENV)/bin/python -e '.[server]'; } || \
	$(RUN_VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[server]'
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(RUN_VENV)/bin/python -m cheeseboard.server.devrun --datadir $(DATADIR) --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The fast part: tests/unit, in process, no servers (under a minute). `make test` runs it all.
unit: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

# Two pytest-xdist workers; each test module (tests/docker and tests/stress each as a whole)
# runs on one of them (tests/conftest.py). PYTEST_WORKERS=0 runs it all in one process.
PYTEST_WORKERS ?= 2
test: lint typecheck docker-lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# The sdist and the wheel built from it (README, Install the client), with the dev venv's
# hatchling: no download.
dist: $(STAMP)
	$(BIN)/python -m build --no-isolation --outdir $(DIST) .

clean:
	rm -rf $(VENV) $(RUN_VENV) .bench .pytest_cache .mypy_cache .ruff_cache

# Container images (docs/containers.md). DOCKER needs BuildKit (`docker buildx` installed; on the CI
# machines /usr/bin/docker). BASE / ALPINE_BASE name the Python base images (default: the official
# python:3.12-slim / -alpine), CA an extra CA bundle that pip trusts during the build, REGISTRY
# where docker-push pushes (e.g. registry.example.com/team).
DOCKER ?= docker
IMAGE_PREFIX ?= cheeseboard
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
DOCKERFILES := docker/server/Dockerfile docker/server/Dockerfile.alpine \
	docker/client/Dockerfile docker/client/Dockerfile.alpine
comma := ,
DOCKER_BUILD = DOCKER_BUILDKIT=1 $(DOCKER) build --network host \
	$(if $(CA),--secret id=ca$(comma)src=$(CA))

docker-lint: $(STAMP)
	$(BIN)/hadolint $(DOCKERFILES)

docker-build:
	$(DOCKER_BUILD) $(if $(BASE),--build-arg BASE=$(BASE)) -f docker/server/Dockerfile \
		-t $(IMAGE_PREFIX)-server:$(IMAGE_VERSION) .
	$(DOCKER_BUILD) $(if $(BASE),--build-arg BASE=$(BASE)) -f docker/client/Dockerfile \
		-t $(IMAGE_PREFIX)-client:$(IMAGE_VERSION) .
	$(DOCKER) image ls $(IMAGE_PREFIX)-server:$(IMAGE_VERSION)

docker-build-alpine:
	$(DOCKER_BUILD) $(if $(ALPINE_BASE),--build-arg BASE=$(ALPINE_BASE)) \
		-f docker/server/Dockerfile.alpine -t $(IMAGE_PREFIX)-server:$(IMAGE_VERSION)-alpine .
	$(DOCKER_BUILD) $(if $(ALPINE_BASE),--build-arg BASE=$(ALPINE_BASE)) \
		-f docker/client/Dockerfile.alpine -t $(IMAGE_PREFIX)-client:$(IMAGE_VERSION)-alpine .

# VERSION -> latest and VERSION-alpine -> alpine (Alpine only when built), plus the same tags
# under $(REGISTRY)/ when REGISTRY is set.
docker-tag:
	@set -e; for image in server client; do \
		name=$(IMAGE_PREFIX)-$$image; \
		for pair in "$(IMAGE_VERSION):latest" "$(IMAGE_VERSION)-alpine:alpine"; do \
			tag=$${pair%%:*}; alias=$${pair#*:}; \
			$(DOCKER) image inspect $$name:$$tag >/dev/null 2>&1 || continue; \
			for target in $$name:$$alias $(if $(REGISTRY),$(REGISTRY)/$$name:$$tag $(REGISTRY)/$$name:$$alias); do \
				echo "$$name:$$tag -> $$target"; $(DOCKER) tag $$name:$$tag $$target; \
			done; \
		done; \
	done

docker-push:
	@test -n "$(REGISTRY)" || { echo "usage: make docker-push REGISTRY=registry.example.com/team"; exit 2; }
	@$(MAKE) --no-print-directory docker-tag REGISTRY=$(REGISTRY)
	@set -e; for image in server client; do \
		name=$(IMAGE_PREFIX)-$$image; \
		for pair in "$(IMAGE_VERSION):latest" "$(IMAGE_VERSION)-alpine:alpine"; do \
			tag=$${pair%%:*}; alias=$${pair#*:}; \
			$(DOCKER) image inspect $$name:$$tag >/dev/null 2>&1 || continue; \
			$(DOCKER) push $(REGISTRY)/$$name:$$tag; $(DOCKER) push $(REGISTRY)/$$name:$$alias; \
		done; \
	done
