#!/usr/bin/env bash
# Generates shell completions and man pages into dist-assets/ for release
# archives and .deb/.rpm packages (called by goreleaser's before hook).
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist-assets
rm -rf "$out"; mkdir -p "$out/completions" "$out/man"
go build -o "$out/vpp" ./cmd/vpp
for sh in bash zsh fish powershell; do
  "$out/vpp" completion "$sh" > "$out/completions/vpp.$sh"
done
"$out/vpp" man --dir "$out/man"
gzip -9 -n "$out"/man/*.1
rm "$out/vpp"
