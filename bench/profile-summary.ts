/**
 * Summaries of V8 profiles (SKEIN_AGENT_START_PROF, node --cpu-prof, --heap-prof):
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--top 40] [--under REGEX] [--focus REGEX] [--timeline]
 *     self time by function (only samples with a function matching --under on the stack);
 *     --focus: inclusive time of the functions matching REGEX; --timeline: per second, what ran
 *     (idle, gc, the first lists, the agent's events, each reconcile step by its line, other).
 *   node dist/bench/profile-summary.js FILE.heapprofile [--top 40] [--under REGEX] [--focus REGEX]
 *     sampled bytes by allocation site (builtins with their caller); --under, --focus as above.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface CpuNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
}
interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: "string", default: "40" },
    under: { type: "string" },
    focus: { type: "string" },
    timeline: { type: "boolean", default: false },
  },
});
const file = positionals[0];
if (file === undefined)
  throw new Error("usage: profile-summary.js FILE [--top N] [--under RE] [--focus RE] [--timeline]");
const top = Number(values.top);

function label(f: CallFrame): string {
  const url = f.url.replace(/^.*\/(dist|node_modules)\//, "$1/");
  return `${f.functionName === "" ? "(anonymous)" : f.functionName} ${url}:${f.lineNumber + 1}`;
}

function print(title: string, rows: Map<string, number>, unit: (n: number) => string, total: number): void {
  process.stdout.write(`\n${title}:\n`);
  for (const [l, n] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`${unit(n)} ${((100 * n) / total).toFixed(1).padStart(5)} %  ${l}\n`);
}

function add(m: Map<string, number>, k: string, n: number): void {
  m.set(k, (m.get(k) ?? 0) + n);
}

function cpu(profile: CpuProfile): void {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stack = (id: number): string[] => {
    const out: string[] = [];
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const node = nodes.get(n);
      if (node !== undefined) out.push(label(node.callFrame));
    }
    return out;
  };
  const stacks = new Map<number, string[]>();
  const stackOf = (id: number): string[] => {
    let s = stacks.get(id);
    if (s === undefined) stacks.set(id, (s = stack(id)));
    return s;
  };
  const under = values.under === undefined ? undefined : new RegExp(values.under);
  const focus = values.focus === undefined ? undefined : new RegExp(values.focus);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  // Per second of the profile, time by phase: the outermost phase on the stack names it.
  const phases: [string, RegExp][] = [
    ["list", /^(getJson|listPaged) /],
    ["events", /^#onEvent /],
    ["step", /^apply dist\/agent\/steps\.js/],
  ];
  const timeline: Map<string, number>[] = [];
  let total = 0;
  let t = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const id = profile.samples[i] ?? 0;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const s = stackOf(id);
    const leaf = s[0] ?? "";
    if (values.timeline) {
      let phase = /^\(garbage collector\)/.test(leaf) ? "gc" : /^\(idle\)/.test(leaf) ? "idle" : "other";
      if (phase === "other") for (const l of s) for (const [name, re] of phases) if (re.test(l)) phase = name;
      if (phase === "step") phase = stepName(s);
      const b = (timeline[Math.floor(t / 1e6)] ??= new Map());
      add(b, phase, dt);
    }
    if (under !== undefined && !s.some((l) => under.test(l))) continue;
    total += dt;
    add(self, leaf, dt);
    if (focus !== undefined) for (const l of new Set(s)) if (focus.test(l)) add(incl, l, dt);
  }
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  process.stdout.write(
    `total ${ms(total)} sampled${under === undefined ? "" : ` under /${values.under}/`}\n`,
  );
  print("self time", self, ms, total);
  if (focus !== undefined) print(`inclusive time of /${values.focus}/`, incl, ms, total);
  if (values.timeline) {
    process.stdout.write("\ntimeline (ms per second):\n");
    timeline.forEach((b, sec) => {
      const parts = [...b].sort((x, y) => y[1] - x[1]).map(([c, us]) => `${c} ${(us / 1000).toFixed(0)}`);
      process.stdout.write(`${String(sec).padStart(3)} s: ${parts.join(", ")}\n`);
    });
  }
}

/** A step's apply on the stack, named by its line in dist/agent/steps.js. */
function stepName(stack: readonly string[]): string {
  const l = stack.find((x) => x.startsWith("apply dist/agent/steps.js")) ?? "";
  return `step at steps.js:${/:(\d+)$/.exec(l)?.[1] ?? "?"}`;
}

function heap(head: HeapNode): void {
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const focus = values.focus === undefined ? undefined : new RegExp(values.focus);
  const under = values.under === undefined ? undefined : new RegExp(values.under);
  let total = 0;
  const walk = (n: HeapNode, stack: string[]): void => {
    const l = label(n.callFrame);
    const path = [...stack, l];
    for (const c of n.children) walk(c, path);
    if (under !== undefined && !path.some((x) => under.test(x))) return;
    // Builtins are named by their caller too: `sort :0 ← podInfo engine.js:595`.
    const site = l.endsWith(" :0") && stack.length > 0 ? `${l} ← ${stack.at(-1) ?? ""}` : l;
    total += n.selfSize;
    add(self, site, n.selfSize);
    if (focus !== undefined) for (const s of new Set(path)) if (focus.test(s)) add(incl, s, n.selfSize);
  };
  walk(head, []);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1).padStart(7)} MiB`;
  process.stdout.write(`total ${mib(total)} live (sampled)\n`);
  print("by allocation site", self, mib, total);
  if (focus !== undefined) print(`inclusive, /${values.focus}/`, incl, mib, total);
}

const parsed = JSON.parse(readFileSync(file, "utf8")) as CpuProfile | { head: HeapNode };
if ("head" in parsed) heap(parsed.head);
else cpu(parsed);
