// Builds dist/cni-install/: skein-cni as it is installed on a node, runnable without the
// repository's node_modules and without a system Node.js.
//
//   skein-cni               POSIX sh wrapper: execs skein-cni.d/node on skein-cni.d/skein-cni.cjs,
//                           with absolute paths computed from its own location
//   skein-cni.d/node        a copy of the Node runtime that ran this build (process.execPath)
//   skein-cni.d/skein-cni.cjs  cni/main.ts and everything it imports, bundled by esbuild as
//                           CommonJS (an ES module entry costs Node's ESM loader: ~10 ms a run)
//   skein-cni.d/skein-cni-server.cjs  cni/server-main.ts, the resident CNI server, bundled the same
//                           way (its own file: the per-call bundle loads no server code);
//                           run as `skein-cni.d/node skein-cni.d/skein-cni-server.cjs --socket PATH`
//   skein-cni.d/koffi.node  koffi's native module, which the bundle loads from its own directory
//   skein-cni.d/BUILD       what went in (Node version, koffi version, source commit)
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import process from "node:process";

/** @type {Record<string, string | undefined>} */
const KOFFI_NATIVE = {
  "linux-x64": "@koromix/koffi-linux-x64/linux_x64/koffi.node",
  "linux-arm64": "@koromix/koffi-linux-arm64/linux_arm64/koffi.node",
};

const WRAPPER = `#!/bin/sh
# skein-cni: Skein's CNI plugin. Runs the bundled plugin with the Node runtime installed beside
# this file (in skein-cni.d/), so the node needs neither Node.js nor node_modules.
self=$0
if [ -L "$self" ]; then self=$(readlink -f -- "$self") || exit 1; fi
case $self in
*/*)
  dir=\${self%/*}
  dir=\${dir:-/}
  ;;
*) dir=$(command -v -- "$self") && dir=\${dir%/*} || dir=. ;;
esac
# Absolute without a subshell: runtimes start the plugin by full path, and every fork here costs
# a few milliseconds of each pod's start.
case $dir in
/*) ;;
*) dir=$PWD/$dir ;;
esac
unset NODE_OPTIONS NODE_PATH NODE_EXTRA_CA_CERTS
exec "$dir/skein-cni.d/node" "$dir/skein-cni.d/skein-cni.cjs" "$@"
`;

/** Stand-in for the koffi package: koffi.node from the bundle's own directory. */
const KOFFI_SHIM = 'module.exports = require(require("node:path").join(__dirname, "koffi.node"));';

/**
 * @param {string} root
 * @returns {string}
 */
function sourceCommit(root) {
  try {
    return execFileSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

/**
 * Builds dist/cni-install under `root`. Throws when esbuild or koffi's native file is missing.
 * @param {string} root
 * @returns {Promise<string>} the directory written
 */
export async function buildCniInstall(root) {
  const { build } = await import("esbuild");
  const require = createRequire(join(root, "package.json"));
  const platform = `${process.platform}-${process.arch}`;
  const nativeRel = KOFFI_NATIVE[platform];
  if (nativeRel === undefined)
    throw new Error(`skein-cni install form: no koffi native module known for ${platform}`);
  const koffiNative = require.resolve(nativeRel);
  // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment -- a dynamic import is untyped in plain JS
  const koffiModule = /** @type {Record<string, unknown>} */ (await import(require.resolve("koffi")));
  // The CommonJS entry exposes the native module as `default`.
  const koffi = /** @type {Record<string, unknown>} */ (koffiModule.default ?? koffiModule);
  const koffiVersion = String(koffi.version);

  // Built beside the final place and swapped in, so a concurrent install never copies half a build.
  const final = join(root, "dist", "cni-install");
  const out = join(root, "dist", `.cni-install-${process.pid}`);
  const payload = join(out, "skein-cni.d");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(payload, { recursive: true });

  try {
    for (const [entry, bundle] of [
      ["main.ts", "skein-cni.cjs"],
      ["server-main.ts", "skein-cni-server.cjs"],
    ])
      await build({
        entryPoints: [join(root, "cni", entry)],
        outfile: join(payload, bundle),
        bundle: true,
        platform: "node",
        format: "cjs",
        target: `node${process.versions.node.split(".")[0]}`,
        sourcemap: false,
        legalComments: "inline",
        logLevel: "warning",
        banner: {
          js: `// ${bundle}, bundled: see BUILD beside this file.\nconst __skeinModuleUrl = require("node:url").pathToFileURL(__filename).href;`,
        },
        // Modules that find files beside themselves (maps/pins.ts) see the bundle's own URL.
        define: { "import.meta.url": "__skeinModuleUrl" },
        plugins: [
          {
            name: "koffi-from-install-dir",
            setup(b) {
              b.onResolve({ filter: /^koffi$/ }, () => ({ path: "koffi", namespace: "skein-koffi" }));
              b.onLoad({ filter: /.*/, namespace: "skein-koffi" }, () => ({
                contents: KOFFI_SHIM,
                loader: "js",
              }));
            },
          },
        ],
      });
    copyFileSync(koffiNative, join(payload, "koffi.node"));
    copyFileSync(process.execPath, join(payload, "node"));
    chmodSync(join(payload, "node"), 0o755);
    writeFileSync(
      join(payload, "BUILD"),
      `skein-cni ${sourceCommit(root)}\nnode ${process.version} ${platform}\nkoffi ${koffiVersion}\n`,
    );
    writeFileSync(join(out, "skein-cni"), WRAPPER);
    chmodSync(join(out, "skein-cni"), 0o755);
  } catch (err) {
    rmSync(out, { recursive: true, force: true });
    throw err;
  }
  // Two renames: between them dist/cni-install is briefly absent (a build step, not a live path).
  const old = join(root, "dist", `.cni-install-old-${process.pid}`);
  try {
    if (existsSync(final)) renameSync(final, old);
    renameSync(out, final);
  } catch (err) {
    // Another build got there in between: keep whichever tree is in place, drop ours.
    if (!existsSync(final) && existsSync(old)) renameSync(old, final);
    rmSync(out, { recursive: true, force: true });
    throw err;
  } finally {
    rmSync(old, { recursive: true, force: true });
  }
  return final;
}
