#!/usr/bin/env bash
# Makes Debian's kubectl (package kubernetes-client) available without installing it.
#
# The machine image ships the Google Cloud SDK "kubectl" package, which owns /usr/bin/kubectl,
# so `apt-get install kubernetes-client` fails on a file conflict. This script downloads the .deb
# and unpacks it under /opt/skein-tools/kubernetes-client instead. Idempotent: when the binary is
# already there it only prints its path. `apt-get update` runs only when the first download fails.
#
# Prints the kubectl path on stdout (the only thing on stdout); progress goes to stderr.
# Override the destination with SKEIN_TOOLS_DIR (default /opt/skein-tools).
set -euo pipefail

tools_dir="${SKEIN_TOOLS_DIR:-/opt/skein-tools}"
dest="$tools_dir/kubernetes-client"
kubectl="$dest/usr/bin/kubectl"

if [[ -x "$kubectl" ]] && "$kubectl" version --client >/dev/null 2>&1; then
  echo "$kubectl"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt-get download writes as the _apt user when it can; a world-writable temp dir avoids the
# "unsandboxed download" warning and permission failures.
chmod 0777 "$work"

download() {
  (cd "$work" && apt-get download -q kubernetes-client >&2)
}

if ! download; then
  echo "ensure-kubectl: download failed; running apt-get update and retrying" >&2
  apt-get update -q >&2
  download
fi

deb="$(find "$work" -maxdepth 1 -name 'kubernetes-client_*.deb' -print -quit)"
if [[ -z "$deb" ]]; then
  echo "ensure-kubectl: apt-get download produced no kubernetes-client .deb" >&2
  exit 1
fi

# Unpack into a sibling directory and swap it in, so a half-finished extraction is never used.
mkdir -p "$tools_dir"
staging="$(mktemp -d "$tools_dir/.kubernetes-client.XXXXXX")"
dpkg-deb -x "$deb" "$staging"
if [[ ! -x "$staging/usr/bin/kubectl" ]]; then
  rm -rf "$staging"
  echo "ensure-kubectl: $deb has no usr/bin/kubectl" >&2
  exit 1
fi
chmod 0755 "$staging"
rm -rf "$dest"
mv "$staging" "$dest"
echo "ensure-kubectl: unpacked $(basename "$deb") into $dest" >&2
echo "$kubectl"
