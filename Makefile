# mirror-agent: see README.md. The first two targets are the ones a fresh machine needs.
SHELL := /bin/bash
# Debian's python3 (with its python3-* packages) before any other on PATH.
export PATH := /usr/bin:/bin:$(PATH)
SWIFT ?= swift
BIN := .build/debug/mirror-agent
DEMO_ROOT ?= $(CURDIR)/.cache/demo-root

.PHONY: demo test build unit integration deb e2e reliability fuzz crash bench deps-build deps-test deps-deb deps-e2e clean
VERSION = $(shell dpkg-parsechangelog -l packaging/debian/changelog -S Version 2>/dev/null || echo 0.1.0)
DEB := dist/mirror-agent_$(VERSION)_amd64.deb

## demo: validate examples/ and show, as diffs, what apply would write into a scratch root.
demo: deps-build build
	$(BIN) validate examples/
	rm -rf $(DEMO_ROOT) && mkdir -p $(DEMO_ROOT)/etc/mirror-agent/mirrors.d
	printf 'runtimes: [containerd, crio]\n' > $(DEMO_ROOT)/etc/mirror-agent/agent.yaml
	cp examples/*.yaml $(DEMO_ROOT)/etc/mirror-agent/mirrors.d/
	$(BIN) apply --root $(DEMO_ROOT) --dry-run --diff

## test: unit tests; the integration suite (real containerd, skopeo, registries on loopback);
## fuzzing; the .deb, crash consistency with its binary, and the .deb installed in a booted
## Debian with systemd (the e2e suite).
test: deps-e2e build
	$(SWIFT) test
	bash tests/integration/run.sh $(BIN)
	bash fuzz/build-and-run.sh 50000
	$(MAKE) deb
	bash tests/reliability/crash.sh .build/release/mirror-agent 200
	bash tests/e2e/run.sh $(DEB)

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
	bash tests/packaging/selftest.sh
	python3 tests/packaging/check-depends.py $(DEB)

deps-deb:
	scripts/install-deps.sh deb

## e2e: the .deb installed in a booted Debian (systemd-nspawn), against a loopback registry.
e2e: deps-e2e
	@test -f $(DEB) || $(MAKE) deb
	bash tests/e2e/run.sh $(DEB)

deps-e2e:
	scripts/install-deps.sh e2e

## reliability: R1 fuzzing (libFuzzer, 50,000 inputs) and R2 crash consistency (200 kill -9 rounds).
reliability: fuzz crash

fuzz: deps-build
	bash fuzz/build-and-run.sh 50000

crash: deps-build
	$(SWIFT) build -c release --static-swift-stdlib --product mirror-agent
	bash tests/reliability/crash.sh .build/release/mirror-agent 200

## bench: B1-B5 against a release build, one table with same-run baselines.
bench: deps-test
	$(SWIFT) build -c release --static-swift-stdlib --product mirror-agent
	python3 bench/bench.py .build/release/mirror-agent

deps-build:
	scripts/install-deps.sh build

deps-test:
	scripts/install-deps.sh test

clean:
	rm -rf .build .cache
