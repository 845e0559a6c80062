#!/usr/bin/env node
// Summarises a sampled heap profile (.heapprofile): live bytes by allocation site (self), and
// inclusive bytes of the functions matching --focus.
//   node scripts/heapprofile-summary.mjs FILE [--top 40] [--focus REGEX]
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const file = args[0];
if (file === undefined) {
  process.stderr.write("usage: heapprofile-summary.mjs FILE [--top N] [--focus REGEX]\n");
  process.exit(2);
}
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i < 0 ? fallback : args[i + 1];
};
const top = Number(opt("--top", "40"));
const focus = opt("--focus", undefined);
const { head } = JSON.parse(readFileSync(file, "utf8"));
const label = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^.*\/(dist|node_modules)\//, "$1/");
  return `${f.functionName || "(anonymous)"} ${url}:${f.lineNumber + 1}`;
};
const self = new Map();
const incl = new Map();
let total = 0;
const walk = (n, stack) => {
  const l = label(n);
  const size = n.selfSize;
  total += size;
  self.set(l, (self.get(l) ?? 0) + size);
  const seen = new Set();
  for (const s of [...stack, l])
    if (!seen.has(s)) {
      seen.add(s);
      incl.set(s, (incl.get(s) ?? 0) + size);
    }
  for (const c of n.children) walk(c, [...stack, l]);
};
walk(head, []);
const mib = (b) => (b / 2 ** 20).toFixed(1).padStart(7);
process.stdout.write(`total ${mib(total)} MiB live (sampled)\n\nby allocation site:\n`);
for (const [l, b] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top))
  process.stdout.write(`${mib(b)} MiB  ${l}\n`);
if (focus !== undefined) {
  const re = new RegExp(focus);
  process.stdout.write(`\ninclusive, functions matching /${focus}/:\n`);
  for (const [l, b] of [...incl].filter(([l]) => re.test(l)).sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`${mib(b)} MiB  ${l}\n`);
}
