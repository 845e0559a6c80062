// After tsc: the executables in dist/bin (thin shims onto the compiled entry points).
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "dist", "bin");
mkdirSync(bin, { recursive: true });

const entries = {
  "skein-cni": "../cni/main.js",
  "skein-cni-server": "../cni/server-main.js",
  "skein-agent": "../agent/main.js",
  skeinctl: "../ctl/main.js",
};
for (const [name, target] of Object.entries(entries)) {
  const file = join(bin, name);
  // A dynamic import works whether node treats this extensionless file as CommonJS or ESM.
  writeFileSync(file, `#!/usr/bin/env node\nimport(${JSON.stringify(target)});\n`);
  chmodSync(file, 0o755);
}

// The agent's share of @kubernetes/client-node, bundled in place of its compiled re-export (see
// agent/k8s/client.ts): only what KubeConfig, Watch and ListWatch reach, not every generated API.
{
  const { build } = await import("esbuild");
  await build({
    entryPoints: [join(root, "agent", "k8s", "client.ts")],
    outfile: join(root, "dist", "agent", "k8s", "client.js"),
    allowOverwrite: true,
    bundle: true,
    platform: "node",
    format: "esm",
    target: `node${process.versions.node.split(".")[0]}`,
    // The package's CommonJS dependencies require Node's built-ins.
    banner: {
      js: 'import { createRequire as __skeinRequire } from "node:module"; const require = __skeinRequire(import.meta.url);',
    },
    sourcemap: false,
    logLevel: "warning",
  });
  rmSync(join(root, "dist", "agent", "k8s", "client.js.map"), { force: true });
}

// skein-cni's self-contained installed form (dist/cni-install; see scripts/cni-install.mjs).
const { buildCniInstall } = await import("./cni-install.mjs");
await buildCniInstall(root);
