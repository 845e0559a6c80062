#!/bin/sh
# Installs what Skein needs on a Debian 12 machine and builds it. Idempotent and quick when
# everything is in place; run by `npm run lab` and `npm test` before they start.
set -eu
cd "$(dirname "$0")/.."

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "setup: must run as root to install packages ($*)" >&2
    exit 1
  fi
}

# Debian packages: compiler and BPF tooling, iproute2/nftables for the node, podman+runc and
# busybox for the runtime interop test, shellcheck/vagrant for the Vagrant lab checks, the
# reference CNI plugins (ptp, host-local) that bench:cni measures skein-cni against, and BIRD 2
# (native routing's BGP: the agent and the lab's router run their own bird processes).
PACKAGES="clang-16 llvm-16 clang-format-16 libbpf-dev libbpf1 bpftool iproute2 iputils-ping iperf3 nftables iptables tcpdump podman runc busybox-static shellcheck vagrant vagrant-libvirt netcat-openbsd util-linux containernetworking-plugins bird2"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  need_root "apt-get install$missing"
  echo "setup: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # The package starts a system-wide BIRD; Skein runs its own per node, so the distribution's is stopped.
  case " $missing " in *" bird2 "*) systemctl disable --now bird >/dev/null 2>&1 || true ;; esac
fi

# Debian's kubectl, unpacked beside the image's own (which owns /usr/bin/kubectl).
if [ -x scripts/ensure-kubectl.sh ]; then
  scripts/ensure-kubectl.sh >/dev/null
fi

# Node dependencies, when package-lock.json changed since the last install.
stamp=node_modules/.skein-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# Build: BPF object, TypeScript, executables and the installable CNI plugin.
npm run --silent build
