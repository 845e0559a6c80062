#!/bin/sh
# The smoke test on the cluster (lab/smoke through kubectl): waits until every node has joined
# and is Ready and every Skein agent is ready, then runs `node dist/lab/smoke/main.js` from the
# Skein image itself (containerd's ctr, host network), with this node's kubectl and admin
# kubeconfig mounted in. Its pods run the same image with the lab workload as their command.
set -eu
: "${IMAGE:?}" "${NODE_COUNT:?}"
export KUBECONFIG=/etc/kubernetes/admin.conf

deadline=$(($(date +%s) + 900))
while [ "$(kubectl get nodes --no-headers 2>/dev/null | wc -l)" -lt "$NODE_COUNT" ]; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "smoke: $(kubectl get nodes --no-headers | wc -l) of $NODE_COUNT nodes joined within 15 minutes" >&2
		exit 1
	fi
	sleep 5
done
kubectl wait --for=condition=Ready node --all --timeout=600s
kubectl -n skein-system rollout status daemonset/skein-agent --timeout=600s
kubectl get nodes -o wide
kubectl -n skein-system get pods -o wide

ctr --namespace k8s.io run --rm --net-host \
	--env HOME=/tmp \
	--mount "type=bind,src=/etc/kubernetes/admin.conf,dst=/etc/skein-smoke/kubeconfig,options=rbind:ro" \
	--mount "type=bind,src=$(command -v kubectl),dst=/usr/local/bin/kubectl,options=rbind:ro" \
	"$IMAGE" "skein-smoke-$$" \
	node /opt/skein/dist/lab/smoke/main.js \
	--kubeconfig /etc/skein-smoke/kubeconfig --image "$IMAGE" --image-pull-policy Never
