#!/bin/sh
# Every node: kernel settings for Kubernetes, containerd (systemd cgroups, CNI from /opt/cni/bin and
# /etc/cni/net.d), the pinned kubelet/kubeadm/kubectl, and what skein-cni needs on the host
# (libbpf 1.x, iproute2, nsenter). Idempotent: `vagrant provision` runs it again.
set -eu
: "${K8S_VERSION:?}" "${NODE_IP:?}"
minor=$(echo "$K8S_VERSION" | cut -d. -f1,2)
export DEBIAN_FRONTEND=noninteractive

# The kubelet refuses to start with swap on.
swapoff -a
sed -i '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#/' /etc/fstab

cat >/etc/modules-load.d/skein-k8s.conf <<'MODULES'
overlay
br_netfilter
MODULES
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/90-skein-k8s.conf <<'SYSCTL'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
SYSCTL
sysctl --quiet --system

apt-get update -qq
# containerd and runc from Debian 12; buildah builds the Skein image (image.sh); libbpf1, iproute2
# and util-linux are skein-cni's host dependencies (docs/cni.md).
apt-get install -y -qq --no-install-recommends \
	apt-transport-https ca-certificates curl gpg containerd runc buildah \
	libbpf1 iproute2 nftables util-linux >/dev/null

mkdir -p /etc/containerd
containerd config default >/etc/containerd/config.toml
# kubeadm configures the kubelet for the systemd cgroup driver; the runtime must match. The
# sandbox image is the one this Kubernetes release expects; the CNI paths are where the install-cni
# init container puts skein-cni and where the agent writes its configuration.
sed -i \
	-e 's/SystemdCgroup = false/SystemdCgroup = true/' \
	-e 's#sandbox_image = .*#sandbox_image = "registry.k8s.io/pause:3.10"#' \
	-e 's#bin_dir = .*#bin_dir = "/opt/cni/bin"#' \
	-e 's#conf_dir = .*#conf_dir = "/etc/cni/net.d"#' \
	/etc/containerd/config.toml
systemctl restart containerd
systemctl enable --quiet containerd

install -d -m 0755 /etc/apt/keyrings
curl -fsSL "https://pkgs.k8s.io/core:/stable:/v${minor}/deb/Release.key" |
	gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v${minor}/deb/ /" \
	>/etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq --no-install-recommends --allow-change-held-packages --allow-downgrades \
	"kubelet=${K8S_VERSION}-1.1" "kubeadm=${K8S_VERSION}-1.1" "kubectl=${K8S_VERSION}-1.1" >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null

# The VMs' first interface is the provider's NAT network (the same address on every VirtualBox
# VM): the Node's InternalIP, and so the VXLAN underlay, must be the private network's address.
echo "KUBELET_EXTRA_ARGS=--node-ip=${NODE_IP}" >/etc/default/kubelet
systemctl enable --quiet kubelet
echo "common: containerd $(containerd --version | cut -d' ' -f3), kubeadm $(kubeadm version -o short), node IP ${NODE_IP}"
