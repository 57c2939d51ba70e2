# Developer entry points. `make test` is the test command CI runs.
GO ?= go

.PHONY: test test-race test-unit lint proto proto-check fuzz kafka-start kafka-stop build demo docs

build:
	$(GO) build -o vpp ./cmd/vpp

demo:
	$(GO) run ./cmd/vpp demo

# The CLI reference in docs/cli, generated from the cobra commands.
# TestCLIReferenceCurrent (cmd/vpp, part of `make test`) fails when it is
# stale.
docs:
	$(GO) run ./cmd/vpp docs --dir docs/cli

# The whole suite. With VPP_TEST_BROKERS=host:port the Kafka tests run
# against that broker; without it they start an embedded broker.
test: lint proto-check
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) test-race
	$(MAKE) fuzz
	$(GO) test -run '^$$' -bench . -skip TwinMemory -benchtime 100x ./...
	$(GO) test -run '^$$' -bench TwinMemory -benchtime 1x ./internal/aggregate/

# The race detector over every package; -short leaves out the long
# integration tests (they run without it above), and allocation-count
# checks are off under it (raceEnabled in the packages' race_*_test.go).
test-race:
	$(GO) test -race -short -count=1 -timeout 20m ./...

# gofmt, go vet on Linux and on the other release targets (their build-
# tagged files), and go.mod as go mod tidy leaves it.
lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum not tidy: run go mod tidy"; exit 1; }

proto:
	scripts/protogen.sh

proto-check:
	scripts/protogen.sh --check

FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeValidate$$' -fuzztime $(FUZZTIME) ./internal/ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendReading$$' -fuzztime $(FUZZTIME) ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzRecord$$' -fuzztime $(FUZZTIME) ./internal/aggregate/
	$(GO) test -run '^$$' -fuzz '^FuzzSpoolRecordReader$$' -fuzztime $(FUZZTIME) ./internal/spool/
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyToken$$' -fuzztime $(FUZZTIME) ./internal/auth/

kafka-start:
	scripts/kafka.sh start

kafka-stop:
	scripts/kafka.sh stop

# Releases: goreleaser v2 pinned, run as a Go module.
GORELEASER ?= $(GO) run github.com/goreleaser/goreleaser/v2@v2.15.1

.PHONY: release-check release-snapshot release-local
release-check:
	$(GORELEASER) check

# A snapshot build of linux/amd64 with the release settings; prints the
# version the ldflags stamped.
release-snapshot:
	GOOS=linux GOARCH=amd64 $(GORELEASER) build --snapshot --clean --single-target --output dist/vpp
	dist/vpp version

# Every archive and .deb/.rpm package, without publishing.
release-local:
	$(GORELEASER) release --snapshot --clean
