#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof, SKEIN_AGENT_START_PROF): self time by function,
// and total (inclusive) time of the functions whose name matches --focus.
//   node scripts/cpuprofile-summary.mjs FILE [--top 40] [--focus REGEX]
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const file = args[0];
if (file === undefined) {
  process.stderr.write("usage: cpuprofile-summary.mjs FILE [--top N] [--focus REGEX]\n");
  process.exit(2);
}
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i < 0 ? fallback : args[i + 1];
};
const top = Number(opt("--top", "40"));
const focus = opt("--focus", undefined);
// --under REGEX: only samples with a matching function on the stack.
const under = opt("--under", undefined);
const profile = JSON.parse(readFileSync(file, "utf8"));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
// Time of each sample: the delta to the next one.
const selfUs = new Map();
const deltas = profile.timeDeltas;
const underRe = under === undefined ? undefined : new RegExp(under);
const underCache = new Map();
const isUnder = (id) => {
  if (underRe === undefined) return true;
  let r = underCache.get(id);
  if (r === undefined) {
    r = false;
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const f = nodes.get(n).callFrame;
      if (underRe.test(`${f.functionName} ${f.url}:${f.lineNumber + 1}`)) r = true;
    }
    underCache.set(id, r);
  }
  return r;
};
for (let i = 0; i < profile.samples.length; i++) {
  if (!isUnder(profile.samples[i])) continue;
  const dt = deltas[i + 1] ?? 0;
  selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
}
const label = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^.*\/(dist|node_modules)\//, "$1/");
  return `${f.functionName || "(anonymous)"} ${url}:${f.lineNumber + 1}`;
};
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const bySelf = new Map();
for (const [id, us] of selfUs) {
  const l = label(nodes.get(id));
  bySelf.set(l, (bySelf.get(l) ?? 0) + us);
}
const ms = (us) => (us / 1000).toFixed(0).padStart(7);
process.stdout.write(`total ${ms(total)} ms sampled\n\nself time:\n`);
for (const [l, us] of [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, top))
  process.stdout.write(`${ms(us)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${l}\n`);
if (focus !== undefined) {
  // Inclusive time: a sample counts once for each distinct matching function on its stack.
  const re = new RegExp(focus);
  const incl = new Map();
  for (const [id, us] of selfUs) {
    const seen = new Set();
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const l = label(nodes.get(n));
      if (re.test(l) && !seen.has(l)) {
        seen.add(l);
        incl.set(l, (incl.get(l) ?? 0) + us);
      }
    }
  }
  process.stdout.write(`\ninclusive time of functions matching /${focus}/:\n`);
  for (const [l, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`${ms(us)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${l}\n`);
}

// --timeline: per second, what ran, by the first of these on the stack (innermost first).
if (args.includes("--timeline")) {
  const cats = [
    ["gc", /^\(garbage collector\)/],
    ["idle", /^\(idle\)/],
    ["ipcache step", /^apply dist\/agent\/steps\.js:2[0-9][0-9]/],
    ["policy step", /^apply dist\/agent\/steps\.js:3[0-9][0-9]/],
    ["engine", / dist\/policy\/engine\.js/],
    ["onEvent", /#onEvent /],
    ["trim", /trimObject /],
    ["list", /getJson |listPaged /],
  ];
  const catOf = (id) => {
    let fallback = "other";
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const l = label(nodes.get(n));
      for (const [c, re] of cats) if (re.test(l)) return c === "engine" || c === "onEvent" ? c : c;
    }
    return fallback;
  };
  // Outermost category wins for steps/onEvent; innermost for gc/idle (they are leaves).
  const catCache = new Map();
  const catFor = (id) => {
    let c = catCache.get(id);
    if (c === undefined) {
      const leaf = label(nodes.get(id));
      if (/^\(garbage collector\)/.test(leaf)) c = "gc";
      else if (/^\(idle\)/.test(leaf)) c = "idle";
      else {
        c = "other";
        for (let n = id; n !== undefined; n = parent.get(n)) {
          const l = label(nodes.get(n));
          for (const [name, re] of cats) if (name !== "gc" && name !== "idle" && re.test(l)) c = name;
        }
      }
      catCache.set(id, c);
    }
    return c;
  };
  void catOf;
  const buckets = [];
  let t = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += deltas[i] ?? 0;
    const s = Math.floor(t / 1e6);
    buckets[s] ??= new Map();
    const c = catFor(profile.samples[i]);
    buckets[s].set(c, (buckets[s].get(c) ?? 0) + (deltas[i + 1] ?? 0));
  }
  process.stdout.write("\ntimeline (ms per second):\n");
  buckets.forEach((b, s) => {
    const parts = [...b].sort((x, y) => y[1] - x[1]).map(([c, us]) => `${c} ${(us / 1000).toFixed(0)}`);
    process.stdout.write(`${String(s).padStart(3)} s: ${parts.join(", ")}\n`);
  });
}
