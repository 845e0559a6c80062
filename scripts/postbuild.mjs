// After tsc: the executables in dist/bin (thin shims onto the compiled entry points).
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "dist", "bin");
mkdirSync(bin, { recursive: true });

const entries = {
  "skein-cni": "../cni/main.js",
  "skein-agent": "../agent/main.js",
  skeinctl: "../ctl/main.js",
};
for (const [name, target] of Object.entries(entries)) {
  const file = join(bin, name);
  // A dynamic import works whether node treats this extensionless file as CommonJS or ESM.
  writeFileSync(file, `#!/usr/bin/env node\nimport(${JSON.stringify(target)});\n`);
  chmodSync(file, 0o755);
}

// skein-cni's self-contained installed form (dist/cni-install; see scripts/cni-install.mjs).
const { buildCniInstall } = await import("./cni-install.mjs");
await buildCniInstall(root);
