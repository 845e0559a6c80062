#!/bin/sh
# A worker: kubeadm join with the lab's bootstrap token. The DaemonSet then starts the Skein agent
# here, which programs the node and writes its CNI configuration; the node turns Ready.
set -eu
: "${CP_IP:?}" "${TOKEN:?}"
node=$(hostname -s)

if [ -f /etc/kubernetes/kubelet.conf ]; then
	echo "worker: $node joined already"
	exit 0
fi
# The control plane may still be starting (libvirt brings machines up in parallel). The CA is not
# pinned: the token is the lab's secret, on a host-only network.
tries=0
until kubeadm join "${CP_IP}:6443" --token "$TOKEN" --discovery-token-unsafe-skip-ca-verification --node-name "$node"; do
	tries=$((tries + 1))
	if [ "$tries" -ge 30 ]; then
		echo "worker: kubeadm join failed $tries times" >&2
		exit 1
	fi
	kubeadm reset --force >/dev/null 2>&1 || true
	sleep 20
done
echo "worker: $node joined ${CP_IP}"
