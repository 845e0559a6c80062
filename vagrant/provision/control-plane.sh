#!/bin/sh
# The control plane: kubeadm init with the pod CIDR (the controller manager then gives every node
# its /24 podCIDR) and the Service CIDR, a fixed bootstrap token for the workers, then Skein from
# deploy/skein.yaml, as an admin would install it on any cluster.
#   KUBE_PROXY=true:  kubeadm installs kube-proxy; serviceCidr is set to the cluster's Service range
#                     (kube-proxy translates; pod egress to a ClusterIP is judged on the backend).
#   KUBE_PROXY=false: kubeadm skips its kube-proxy addon; serviceLb is bpf (Skein translates every
#                     Service) and the agent reaches the API server on its real address, since no
#                     one translates the kubernetes Service's ClusterIP before the agent runs.
set -eu
: "${K8S_VERSION:?}" "${NODE_IP:?}" "${POD_CIDR:?}" "${SERVICE_CIDR:?}" "${TOKEN:?}" "${SRC:?}"
KUBE_PROXY=${KUBE_PROXY:-true}
node=$(hostname -s)

case "$KUBE_PROXY" in
true)
	skip_phases=""
	service_cidr="$SERVICE_CIDR"
	service_lb=off
	api_env=""
	;;
false)
	skip_phases="addon/kube-proxy"
	# Also with bpf: the node routes the Service range into the VXLAN device (node → ClusterIP).
	service_cidr="$SERVICE_CIDR"
	service_lb=bpf
	# The agent's in-cluster config: the API server itself, not the kubernetes Service's ClusterIP.
	api_env="s#^            - name: NODE_NAME\$#            - name: KUBERNETES_SERVICE_HOST\n              value: \"$NODE_IP\"\n            - name: KUBERNETES_SERVICE_PORT\n              value: \"6443\"\n            - name: NODE_NAME#"
	;;
*)
	echo "control-plane: KUBE_PROXY must be true or false, not $KUBE_PROXY" >&2
	exit 1
	;;
esac

if [ ! -f /etc/kubernetes/admin.conf ]; then
	kubeadm init \
		${skip_phases:+--skip-phases "$skip_phases"} \
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
sed "s#^    serviceCidr: \"\"#    serviceCidr: \"$service_cidr\"#;s#^    serviceLb: \"off\"#    serviceLb: \"$service_lb\"#;$api_env" "$SRC/deploy/skein.yaml" | kubectl apply -f -
# Re-provisioning rebuilt the image under the same tag: restart the agents so they run it.
if [ "$existed" = 1 ]; then
	kubectl -n skein-system rollout restart daemonset/skein-agent
fi
kubectl -n skein-system rollout status daemonset/skein-agent --timeout=600s
kubectl wait --for=condition=Ready "node/$node" --timeout=600s
kubectl get nodes -o wide
