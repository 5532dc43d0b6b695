#!/usr/bin/env bash
# Builds the mcpauth container image (deploy/Containerfile): FROM scratch with the mcpauth binary,
# the shared libraries it links (as `ldd` lists them: the C library, libgcc_s, the dynamic loader),
# the system's CA bundle, /etc/passwd and /etc/group naming its user (uid 10001) and the default
# /etc/mcpauth/mcpauth.toml (deploy/mcpauth.toml). A scratch image cannot RUN anything, so this
# script lays that root filesystem out in a temporary build context and builds from there.
#
#   deploy/build-image.sh                          # cargo build --release, then the image mcpauth:latest
#   deploy/build-image.sh --tag mcpauth:1.2.3
#   deploy/build-image.sh --binary target/x/mcpauth --tag localhost/mcpauth:test   # a binary built already
#
# Environment: CONTAINER_TOOL (podman or docker; default: podman when installed, else docker).
# The binary must be built on a system like the one whose libraries go in (here Debian 12, glibc
# 2.36): the libraries are copied from this machine, so binary and libraries always match.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary=""
tag="mcpauth:latest"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
  esac
done

tool="${CONTAINER_TOOL:-}"
if [[ -z "$tool" ]]; then
  if command -v podman >/dev/null 2>&1; then tool=podman; else tool=docker; fi
fi
command -v "$tool" >/dev/null 2>&1 || { echo "build-image: $tool is not installed" >&2; exit 2; }

if [[ -z "$binary" ]]; then
  (cd "$root" && cargo build --release -p mcpauth-server)
  binary="${CARGO_TARGET_DIR:-$root/target}/release/mcpauth"
fi
[[ -x "$binary" ]] || { echo "build-image: no executable at $binary" >&2; exit 2; }
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -f "$ca_bundle" ]] || { echo "build-image: no CA bundle at $ca_bundle (install ca-certificates)" >&2; exit 2; }

context="$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/etc/mcpauth" "$rootfs/tmp" "$context/data"
chmod 1777 "$rootfs/tmp"
install -m 0755 "$binary" "$rootfs/usr/local/bin/mcpauth"

# The shared libraries, at the paths the binary looks for them (the loader's path is in the binary).
if ldd_out="$(ldd "$binary" 2>&1)"; then
  if grep -q 'not found' <<<"$ldd_out"; then
    echo "build-image: a library of $binary is missing:" >&2
    echo "$ldd_out" >&2
    exit 1
  fi
  for lib in $(grep -o '/[^ ]*' <<<"$ldd_out" | sort -u); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
elif ! grep -q 'not a dynamic executable' <<<"$ldd_out"; then
  echo "build-image: ldd $binary failed: $ldd_out" >&2
  exit 1
fi

cp -L "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/nonexistent\nmcpauth:x:10001:10001:mcpauth:/data:/nonexistent\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nmcpauth:x:10001:\n' >"$rootfs/etc/group"
# /etc/hosts first (Compose service names come from DNS, localhost from /etc/hosts); glibc's files
# and dns lookups are built into libc.so.6 (2.34 and later): no NSS modules to copy.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
install -m 0644 "$root/deploy/mcpauth.toml" "$rootfs/etc/mcpauth/mcpauth.toml"
cp "$root/deploy/Containerfile" "$context/Containerfile"

echo "build-image: $binary and $(find "$rootfs" -name '*.so*' | wc -l) libraries; $tool build -t $tag"
format=()
[[ "$tool" == podman || "$tool" == buildah ]] && format=(--format docker) # keeps HEALTHCHECK
"$tool" build "${format[@]}" -f "$context/Containerfile" -t "$tag" "$context"
