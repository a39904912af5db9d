# mirror-agent: see README.md. The first two targets are the ones a fresh machine needs.
SHELL := /bin/bash
# Debian's python3 (with its python3-* packages) before any other on PATH.
export PATH := /usr/bin:/bin:$(PATH)
SWIFT ?= swift
BIN := .build/debug/mirror-agent
DEMO_ROOT ?= $(CURDIR)/.cache/demo-root

.PHONY: demo test build unit integration deb e2e reliability fuzz crash bench bench-pure bench-thresholds text-order cri-client deps-build deps-test deps-deb deps-e2e deps-cri deps-bench clean
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
## fuzzing; the .deb, crash consistency with its binary, and the .deb installed in booted
## minimal Debians with systemd: the e2e matrix (bookworm, trixie, sid: containerd 1.6, 1.7, 2.1).
## Each stage prints its time ("# stage: ...").
test: deps-e2e build
	@t=$$(date +%s); $(SWIFT) test; rc=$$?; echo "# stage: unit: $$(( $$(date +%s) - t ))s"; exit $$rc
	@t=$$(date +%s); bash tests/integration/run.sh $(BIN); rc=$$?; echo "# stage: integration: $$(( $$(date +%s) - t ))s"; exit $$rc
	@t=$$(date +%s); bash fuzz/build-and-run.sh 50000; rc=$$?; echo "# stage: fuzz: $$(( $$(date +%s) - t ))s"; exit $$rc
	@t=$$(date +%s); $(MAKE) deb; rc=$$?; echo "# stage: deb: $$(( $$(date +%s) - t ))s"; exit $$rc
	@t=$$(date +%s); bash tests/reliability/crash.sh .build/release/mirror-agent 200; rc=$$?; echo "# stage: crash: $$(( $$(date +%s) - t ))s"; exit $$rc
	bash tests/e2e/matrix.sh $(DEB)

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
	lintian --fail-on error,warning $(DEB)
	@# The unstripped binary the package was made from: linked with the text order (README, Performance).
	@if [ "$${SWIFT_CONFIG:-release}" = release ]; then python3 scripts/text-order/check-order.py $${SWIFT_SCRATCH:-.build}/release/mirror-agent; fi
	bash tests/packaging/selftest.sh
	python3 tests/packaging/check-depends.py $(DEB)
	@# FoundationEssentials only: full Foundation would bring ICU's data (icudt*, 34 MB) back.
	@# The binary is extracted first: a failed extraction must fail the check, not pass it.
	@rm -f .cache/packaged-mirror-agent; mkdir -p .cache
	@dpkg-deb --fsys-tarfile $(DEB) | tar -xO ./usr/bin/mirror-agent > .cache/packaged-mirror-agent
	@test -s .cache/packaged-mirror-agent || { echo 'not ok - cannot extract usr/bin/mirror-agent from $(DEB)'; exit 1; }
	@if strings -a .cache/packaged-mirror-agent | grep -q icudt; then echo 'not ok - the packaged mirror-agent carries ICU data (full Foundation is linked)'; exit 1; else echo 'ok - no ICU data in the packaged mirror-agent'; fi
	@rm -f .cache/packaged-mirror-agent

deps-deb:
	scripts/install-deps.sh deb

## e2e: the .deb installed in booted minimal Debians (systemd-nspawn), against a loopback
## registry: bookworm, trixie and sid (E2E_SUITES to choose; E2E_CACHE for the cached roots).
e2e: deps-e2e
	@test -f $(DEB) || $(MAKE) deb
	bash tests/e2e/matrix.sh $(DEB)

## cri-client: regenerates tests/e2e/cri/api_pb2*.py (the e2e suite's CRI client) from the
## published CRI API (api.proto from Debian's golang-github-kubernetes-cri-api-dev).
cri-client: deps-cri
	scripts/gen-cri-client.sh

deps-cri:
	scripts/install-deps.sh cri

deps-e2e:
	scripts/install-deps.sh e2e

## reliability: R1 fuzzing (libFuzzer, 50,000 inputs) and R2 crash consistency (200 kill -9 rounds).
reliability: fuzz crash

fuzz: deps-build
	bash fuzz/build-and-run.sh 50000

crash: deps-build
	SWIFT=$(SWIFT) scripts/release-build.sh
	python3 scripts/text-order/check-order.py .build/release/mirror-agent
	bash tests/reliability/crash.sh .build/release/mirror-agent 200

## bench: B1-B5 against a release build, one table with same-run baselines; then bench-pure.
bench: deps-bench
	SWIFT=$(SWIFT) scripts/release-build.sh
	python3 scripts/text-order/check-order.py .build/release/mirror-agent
	python3 bench/bench.py .build/release/mirror-agent
	$(MAKE) bench-pure

## bench-pure: the package-benchmark suite (Benchmarks/, its own package, release build): parse,
## load and render of 2,000 registries with allocation counts. Prints its table, then checks the
## run against Benchmarks/Thresholds/ (exit 2 on a regression; fewer allocations only say so).
bench-pure: deps-build
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark baseline update current --no-progress --quiet
	cd Benchmarks && $(SWIFT) package benchmark baseline read current --no-progress
	@cd Benchmarks && { $(SWIFT) package benchmark thresholds check current --no-progress; rc=$$?; \
	  if [ $$rc = 4 ]; then echo "# better than Benchmarks/Thresholds: 'make bench-thresholds' records this run"; rc=0; fi; exit $$rc; }

## bench-thresholds: records the last bench-pure run as Benchmarks/Thresholds/ (commit them).
bench-thresholds:
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark thresholds update current --no-progress

## text-order: regenerates packaging/text-order.txt (root: it loop-mounts a scratch image) from a
## release build run as B3 runs it. After changes to what the daemon runs at start or when idle.
text-order: deps-build
	SWIFT=$(SWIFT) scripts/release-build.sh
	python3 scripts/text-order/gen-order.py .build/x86_64-unknown-linux-gnu/release packaging/text-order.txt
	SWIFT=$(SWIFT) scripts/release-build.sh
	python3 scripts/text-order/check-order.py .build/release/mirror-agent

deps-build:
	scripts/install-deps.sh build

deps-test:
	scripts/install-deps.sh test

deps-bench:
	scripts/install-deps.sh bench

clean:
	rm -rf .build .cache
