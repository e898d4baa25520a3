#!/usr/bin/env bash
# Regenerates Sources/WAProto/Generated/*.pb.swift from Sources/WAProto/Protos.
# Needs Debian's protoc (apt-get install -y protobuf-compiler) and
# protoc-gen-swift 1.39.0 (same version as the SwiftProtobuf dependency).
# If PROTOC_GEN_SWIFT is unset, the plugin is built from the local package
# mirror in a scratch folder outside the repository (nothing of it is committed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
protos="$root/Sources/WAProto/Protos"
out="$root/Sources/WAProto/Generated"
version="1.39.0"

command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }

plugin="${PROTOC_GEN_SWIFT:-}"
if [[ -z "$plugin" ]]; then
    scratch="${TMPDIR:-/tmp}/wabridge-protoc-gen-swift-$version"
    if [[ ! -x "$scratch/.build/debug/protoc-gen-swift" ]]; then
        rm -rf "$scratch"
        src=https://github.com/apple/swift-protobuf
        [[ -d /opt/swift-packages/apple/swift-protobuf.git ]] && src=/opt/swift-packages/apple/swift-protobuf.git
        git clone -q --branch "$version" "$src" "$scratch"
        (cd "$scratch" && swift build --product protoc-gen-swift)
    fi
    plugin="$scratch/.build/debug/protoc-gen-swift"
fi
"$plugin" --version | grep -q "$version" || { echo "protoc-gen-swift is not $version" >&2; exit 1; }

rm -f "$out"/*.pb.swift
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" \
    --proto_path="$protos" \
    --swift_opt=Visibility=Public \
    --swift_opt=FileNaming=DropPath \
    --swift_out="$out" \
    "$protos"/*.proto
echo "generated: $(ls "$out")"
