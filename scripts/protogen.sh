#!/usr/bin/env bash
# Regenerates proto/vppv1 from proto/vpp/v1/*.proto with pinned tools:
# protoc from Debian's protobuf-compiler package and protoc-gen-go at the
# version of google.golang.org/protobuf in go.mod.
#   scripts/protogen.sh          regenerate
#   scripts/protogen.sh --check  fail if the committed code is stale
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null
  else
    echo "protoc not found: install Debian's protobuf-compiler" >&2; exit 1
  fi
fi
pbver=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
bin="$(pwd)/.bin/protoc-gen-go-$pbver"
if [ ! -x "$bin/protoc-gen-go" ]; then
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$pbver"
fi

out=proto/vppv1
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
PATH="$bin:$PATH" protoc -I proto --go_out="$out" --go_opt=paths=source_relative \
  --go_opt=Mvpp/v1/telemetry.proto=github.com/vppctl/vpp/proto/vppv1 \
  --go_opt=Mvpp/v1/state.proto=github.com/vppctl/vpp/proto/vppv1 \
  --go_opt=Mvpp/v1/dispatch.proto=github.com/vppctl/vpp/proto/vppv1 \
  proto/vpp/v1/*.proto
# paths=source_relative writes into vpp/v1/; flatten into the package dir.
mv "$out"/vpp/v1/*.pb.go "$out"/ && rm -rf "$out/vpp"

if [ "${1:-}" = "--check" ]; then
  if ! diff -r "$out" proto/vppv1 >/dev/null; then
    diff -r "$out" proto/vppv1 || true
    echo "proto/vppv1 is stale: run scripts/protogen.sh and commit" >&2; exit 1
  fi
  echo "proto/vppv1 is up to date"
fi
