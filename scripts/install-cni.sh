#!/bin/sh
# Installs skein-cni (dist/cni-install, made by `npm run build`) into a CNI bin directory:
#
#   scripts/install-cni.sh /opt/cni/bin
#
# Result: DEST/skein-cni (the wrapper) and DEST/skein-cni.d -> .skein-cni-<stamp>.d (the bundled
# runtime, plugin and resident server: skein-cni.cjs, skein-cni-server.cjs). Safe while runtimes invoke the plugin: the new payload is copied under a
# fresh name, then the symlink and the wrapper are replaced by rename; older payloads are removed
# afterwards. SKEIN_CNI_INSTALL_SRC overrides the source directory.
set -eu

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 DEST_DIR   (e.g. /opt/cni/bin)" >&2
	exit 2
fi
dest=$1
here=$(cd -P -- "$(dirname -- "$0")" && pwd)
src=${SKEIN_CNI_INSTALL_SRC:-$here/../dist/cni-install}
if [ ! -x "$src/skein-cni" ] || [ ! -x "$src/skein-cni.d/node" ] || [ ! -f "$src/skein-cni.d/skein-cni.cjs" ] || [ ! -f "$src/skein-cni.d/skein-cni-server.cjs" ] || [ ! -f "$src/skein-cni.d/koffi.node" ]; then
	echo "$0: $src does not hold a built skein-cni (run: npm run build)" >&2
	exit 1
fi

mkdir -p -- "$dest"
dest=$(cd -P -- "$dest" && pwd)
stamp=$(date +%Y%m%d%H%M%S).$$
payload=.skein-cni-$stamp.d

cp -R -- "$src/skein-cni.d" "$dest/$payload.tmp"
mv -- "$dest/$payload.tmp" "$dest/$payload"

# An older install may have a real directory where the symlink goes.
if [ -d "$dest/skein-cni.d" ] && [ ! -L "$dest/skein-cni.d" ]; then
	mv -- "$dest/skein-cni.d" "$dest/.skein-cni-previous.$$.d"
fi
ln -s -- "$payload" "$dest/.skein-cni.d.$$"
mv -T -- "$dest/.skein-cni.d.$$" "$dest/skein-cni.d"

cp -- "$src/skein-cni" "$dest/.skein-cni.$$"
chmod 0755 "$dest/.skein-cni.$$"
mv -- "$dest/.skein-cni.$$" "$dest/skein-cni"

for old in "$dest"/.skein-cni-*.d; do
	[ -e "$old" ] || continue
	[ "${old##*/}" = "$payload" ] && continue
	rm -rf -- "$old"
done

echo "installed skein-cni into $dest ($(head -n 1 "$dest/skein-cni.d/BUILD"))"
