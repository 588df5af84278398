# flowgate: the two commands a fresh Debian 12 machine needs.
#   make demo   install build deps, build, analyse the bundled mixed fixture
#   make test   install build+test deps, lint, build, run every test
CARGO ?= cargo
PCAP ?= fixtures/mixed.pcap

.PHONY: demo test deps-build deps-test build lint bench perf fixtures

demo: deps-build build
	./target/release/flowgate analyze $(PCAP) --alerts logs/alerts.jsonl
	@echo "alerts written to logs/alerts.jsonl"

test: deps-test lint
	$(CARGO) test --release --workspace --all-targets
	bash bpf/test_run.sh

deps-build:
	scripts/install-deps.sh build

deps-test:
	scripts/install-deps.sh test

build:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

bench:
	$(CARGO) bench --bench engine

perf: build
	perf/analyze-throughput.sh

fixtures:
	$(CARGO) run --release -p flowgate-synth --bin flowgate-pcapgen -- fixtures
