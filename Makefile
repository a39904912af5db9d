# mirror-agent: see README.md. The first two targets are the ones a fresh machine needs.
SHELL := /bin/bash
SWIFT ?= swift
BIN := .build/debug/mirror-agent
DEMO_ROOT ?= $(CURDIR)/.cache/demo-root

.PHONY: demo test build unit integration deb e2e deps-build deps-test deps-deb clean
VERSION := $(shell dpkg-parsechangelog -l packaging/debian/changelog -S Version 2>/dev/null || echo 0.1.0)
DEB := dist/mirror-agent_$(VERSION)_amd64.deb

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

## deb: the Debian package (release build, Swift stdlib linked statically), checked by lintian.
deb: deps-deb
	ln -sfn packaging/debian debian
	SWIFT=$(SWIFT) dpkg-buildpackage -b -us -uc -d
	mkdir -p dist
	mv ../mirror-agent_$(VERSION)_amd64.deb ../mirror-agent_$(VERSION)_amd64.buildinfo ../mirror-agent_$(VERSION)_amd64.changes dist/
	rm -f debian
	lintian --fail-on error $(DEB)

deps-deb:
	scripts/install-deps.sh deb

deps-build:
	scripts/install-deps.sh build

deps-test:
	scripts/install-deps.sh test

clean:
	rm -rf .build .cache
