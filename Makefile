# mirror-agent: see README.md. The first two targets are the ones a fresh machine needs.
SHELL := /bin/bash
SWIFT ?= swift
BIN := .build/debug/mirror-agent
DEMO_ROOT ?= $(CURDIR)/.cache/demo-root

.PHONY: demo test build unit integration deps-build deps-test clean

## demo: validate examples/ and show, as diffs, what apply would write into a scratch root.
demo: deps-build build
	$(BIN) validate examples/
	rm -rf $(DEMO_ROOT) && mkdir -p $(DEMO_ROOT)/etc/mirror-agent/mirrors.d
	printf 'runtimes: [containerd, crio]\n' > $(DEMO_ROOT)/etc/mirror-agent/agent.yaml
	cp examples/*.yaml $(DEMO_ROOT)/etc/mirror-agent/mirrors.d/
	$(BIN) apply --root $(DEMO_ROOT) --dry-run --diff

## test: unit tests, then the integration suite against real containerd, skopeo and registries on loopback.
test: deps-test build
	$(SWIFT) test
	bash tests/integration/run.sh $(BIN)

build:
	$(SWIFT) build

unit: build
	$(SWIFT) test

integration: deps-test build
	bash tests/integration/run.sh $(BIN)

deps-build:
	scripts/install-deps.sh build

deps-test:
	scripts/install-deps.sh test

clean:
	rm -rf .build .cache
