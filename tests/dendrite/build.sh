#!/usr/bin/env bash
# tests/dendrite/build.sh DIR: builds Dendrite v0.15.2's dendrite,
# generate-config and generate-keys into DIR, for the interoperability
# test (tests/federation_dendrite_test.go, HOMESERVER_TEST_DENDRITE_DIR).
# `go install …@v0.15.2` fails here (the module proxy refuses the
# module's version list), so a throw-away module requires that version
# and builds the commands. About 3 minutes on 2 cores, downloads
# included; nothing is done when DIR already holds the three binaries.
set -euo pipefail
out=$(mkdir -p "${1:?usage: build.sh DIR}" && cd "$1" && pwd)
if [[ -x $out/dendrite && -x $out/generate-config && -x $out/generate-keys ]]; then
	exit 0
fi
mod=$(mktemp -d)
trap 'rm -rf "$mod"' EXIT
cd "$mod"
printf 'module dendritebuild\n\ngo 1.26\n' >go.mod
export GOFLAGS=-mod=mod
go get github.com/element-hq/dendrite@v0.15.2
go build -o "$out/" github.com/element-hq/dendrite/cmd/dendrite \
	github.com/element-hq/dendrite/cmd/generate-config \
	github.com/element-hq/dendrite/cmd/generate-keys
