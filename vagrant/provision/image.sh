#!/bin/sh
# Builds the Skein image on this VM from the synced repository (the Containerfile at its root)
# with buildah, and loads it into containerd's k8s.io namespace, where the kubelet finds it: the
# DaemonSet's imagePullPolicy IfNotPresent then never pulls. Every node builds its own copy, so no
# registry and no shared folder back to the host are needed; buildah's layer cache makes a rebuild
# of unchanged sources quick.
set -eu
: "${IMAGE:?}" "${SRC:?}"
tar=/var/tmp/skein-image.tar

started=$(date +%s)
# Host network and chroot isolation: RUN steps need no container networking (and no CNI) on a
# node whose CNI is the thing being built.
buildah bud --quiet --layers --network host --isolation chroot \
	-f "$SRC/Containerfile" -t "$IMAGE" "$SRC"
rm -f "$tar"
buildah push --quiet "$IMAGE" "docker-archive:$tar:$IMAGE"
ctr --namespace k8s.io images import "$tar" >/dev/null
rm -f "$tar"
echo "image: $IMAGE built and loaded into containerd in $(($(date +%s) - started)) s"
ctr --namespace k8s.io images ls "name==$IMAGE"
