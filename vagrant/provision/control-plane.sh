#!/bin/sh
# The control plane: kubeadm init with the pod CIDR (the controller manager then gives every node
# its /24 podCIDR) and the Service CIDR, a fixed bootstrap token for the workers, then Skein from
# deploy/skein.yaml, as an admin would install it on any cluster: with serviceCidr set to the
# cluster's Service range (kube-proxy translates; pod egress to a ClusterIP is judged on the backend).
set -eu
: "${K8S_VERSION:?}" "${NODE_IP:?}" "${POD_CIDR:?}" "${SERVICE_CIDR:?}" "${TOKEN:?}" "${SRC:?}"
node=$(hostname -s)

if [ ! -f /etc/kubernetes/admin.conf ]; then
	kubeadm init \
		--kubernetes-version "v${K8S_VERSION}" \
		--apiserver-advertise-address "$NODE_IP" \
		--pod-network-cidr "$POD_CIDR" \
		--service-cidr "$SERVICE_CIDR" \
		--token "$TOKEN" --token-ttl 0 \
		--node-name "$node"
fi
export KUBECONFIG=/etc/kubernetes/admin.conf
install -d -o vagrant -g vagrant /home/vagrant/.kube
install -m 0600 -o vagrant -g vagrant /etc/kubernetes/admin.conf /home/vagrant/.kube/config

existed=0
kubectl -n skein-system get daemonset skein-agent >/dev/null 2>&1 && existed=1
sed "s#^    serviceCidr: \"\"#    serviceCidr: \"$SERVICE_CIDR\"#" "$SRC/deploy/skein.yaml" | kubectl apply -f -
# Re-provisioning rebuilt the image under the same tag: restart the agents so they run it.
if [ "$existed" = 1 ]; then
	kubectl -n skein-system rollout restart daemonset/skein-agent
fi
kubectl -n skein-system rollout status daemonset/skein-agent --timeout=600s
kubectl wait --for=condition=Ready "node/$node" --timeout=600s
kubectl get nodes -o wide
