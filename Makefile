# CSP Connector. `make help` lists the targets.
GO       ?= go
FUZZTIME ?= 30s
BENCH    ?= .

.PHONY: help run test lint fuzz bench build powerplatform chaos screenshots

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

run: ## the connector on its built-in simulators (no Azure needed)
	$(GO) run ./cmd/connector sandbox

# The README's first screen: the browser test of the app in the sandbox (Debian's chromium, headless) takes
# it after Retry has provisioned the failed change; the file is replaced only when the test took one.
screenshots: ## docs/app.png, the README's screenshot of the app, taken by the app's browser test in the sandbox (needs chromium)
	rm -f docs/app.png.new
	CSP_APP_SCREENSHOT=$(CURDIR)/docs/app.png.new $(GO) test -count=1 -run '^TestSandboxAppInABrowser$$' ./connector/
	@test -s docs/app.png.new || { echo "no screenshot was taken: the browser test was skipped (is chromium installed?)"; exit 1; }
	mv docs/app.png.new docs/app.png

test: internal/fakesb/node_modules ## every test, with the race detector
	$(GO) test -race -count=1 ./...

# CHAOS_SHORT=1 is the short CI size (200 changes, 40 agreements, 60 s of chaos); CHAOS_CHANGES,
# CHAOS_AGREEMENTS, CHAOS_DURATION and CHAOS_DIR (keep the logs) tune a run.
chaos: internal/fakesb/node_modules ## the chaos test: 3 connector processes, the broker and both simulators, with kill -9s and faults (full size: 1000 changes, 200 agreements; CHAOS_SHORT=1 for CI's)
	CHAOS=1 CHAOS_SHORT=$(CHAOS_SHORT) $(GO) test -count=1 -timeout 30m -run '^TestChaos$$' -v ./cmd/connector/

# The npm packages (rhea) of the fake Service Bus peer that the tests start; reinstalled when the
# lock file changes. The touch marks the install as newer than the lock file.
internal/fakesb/node_modules: internal/fakesb/package-lock.json
	npm ci --prefix internal/fakesb --no-audit --no-fund
	@touch $@

lint: ## go vet, and gofmt must have nothing to change
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fuzz: ## every fuzz target for FUZZTIME each (default 30s): filter escaping, the filter parser, the event decoder, the Partner Center simulator, company-name normalisation
	bash .ci/fuzz-one FuzzFilterLiteralEscaping ./dataverse/ $(FUZZTIME)
	bash .ci/fuzz-one FuzzParseFilter ./dataverse/dataversetest/ $(FUZZTIME)
	bash .ci/fuzz-one FuzzDecodeEvent ./connector/event/ $(FUZZTIME)
	bash .ci/fuzz-one FuzzServeHTTP ./partnercenter/partnercentertest/ $(FUZZTIME)
	bash .ci/fuzz-one FuzzNormalizeCompanyName ./mapping/ $(FUZZTIME)

bench: ## benchmarks (BENCH=regexp to choose); the upsert benchmark takes ~4 minutes
	$(GO) test -run XXX -bench '$(BENCH)' -benchtime 1x -benchmem ./...

build: ## the connector binary in bin/
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/connector ./cmd/connector

powerplatform: ## regenerate infra/powerplatform/apiDefinition.swagger.json from the API's route table
	$(GO) run ./cmd/connector api definition > infra/powerplatform/apiDefinition.swagger.json
