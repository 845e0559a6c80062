/**
 * Label selectors (metav1.LabelSelector) compiled once, matched many times, and indexed so that
 * "which selectors could match this label set?" does not scan every selector in the cluster.
 */

/** A label set: pod labels or namespace labels. */
export type Labels = Readonly<Record<string, string>>;

/** The four operators of metav1.LabelSelectorRequirement. */
export type SelectorOperator = "In" | "NotIn" | "Exists" | "DoesNotExist";

/** One requirement of a compiled selector; `values` is empty for Exists/DoesNotExist. */
export interface Requirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  readonly values: ReadonlySet<string>;
}

/**
 * A validated selector. Requirements are ANDed; none at all is the empty selector, which matches
 * every label set. (A null selector, which matches nothing, is represented by its absence.)
 */
export interface Selector {
  /** matchLabels turned into `In [value]` requirements, then matchExpressions, sorted by key. */
  readonly requirements: readonly Requirement[];
  /** Canonical text, equal for equal selectors; used to detect no-op updates. */
  readonly text: string;
}

/** The selector that matches everything (`{}`). */
export const MATCH_ALL: Selector = { requirements: [], text: "{}" };

const operators: ReadonlySet<string> = new Set(["In", "NotIn", "Exists", "DoesNotExist"]);

/** Code-unit order: identical on every agent, unlike localeCompare. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const qualifiedNamePart = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Why `key` is not a valid label key (a Kubernetes qualified name), or undefined when it is. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !dns1123Subdomain.test(prefix))
      return `label key prefix ${JSON.stringify(prefix)} is not a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !qualifiedNamePart.test(name))
    return `label key ${JSON.stringify(key)} is not a qualified name`;
  return undefined;
}

/** Why `value` is not a valid label value, or undefined when it is. */
export function labelValueProblem(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63 || !qualifiedNamePart.test(value))
    return `label value ${JSON.stringify(value)} is not valid (63 characters, alphanumeric at both ends, -_. inside)`;
  return undefined;
}

/** Result of compiling a selector: the selector, or every problem found (with its field path). */
export type SelectorResult = { ok: true; selector: Selector } | { ok: false; errors: string[] };

/**
 * Validates and compiles a LabelSelector the way the API server validates one: known operators,
 * non-empty values for In/NotIn, no values for Exists/DoesNotExist, valid keys and values.
 * `input` is normally a V1LabelSelector (null/undefined = absent = everything); anything else is
 * reported, never thrown. `path` names the field in error messages.
 */
export function compileSelector(input: unknown, path: string): SelectorResult {
  const errors: string[] = [];
  const reqs: Requirement[] = [];
  if (input === null || input === undefined) return { ok: true, selector: MATCH_ALL };
  if (typeof input !== "object") return { ok: false, errors: [`${path}: not an object`] };
  const sel = input as { matchLabels?: unknown; matchExpressions?: unknown };
  const matchLabels = sel.matchLabels;
  if (matchLabels !== undefined && matchLabels !== null) {
    if (typeof matchLabels !== "object") errors.push(`${path}.matchLabels: not an object`);
    else
      for (const [key, value] of Object.entries(matchLabels as Record<string, unknown>)) {
        const p = `${path}.matchLabels[${JSON.stringify(key)}]`;
        if (typeof value !== "string") {
          errors.push(`${p}: value must be a string`);
          continue;
        }
        const kp = labelKeyProblem(key);
        if (kp !== undefined) errors.push(`${p}: ${kp}`);
        const vp = labelValueProblem(value);
        if (vp !== undefined) errors.push(`${p}: ${vp}`);
        reqs.push({ key, operator: "In", values: new Set([value]) });
      }
  }
  const exprs = sel.matchExpressions;
  if (exprs !== undefined && exprs !== null) {
    if (!Array.isArray(exprs)) errors.push(`${path}.matchExpressions: not a list`);
    else
      exprs.forEach((raw: unknown, i) => {
        const p = `${path}.matchExpressions[${i}]`;
        if (typeof raw !== "object" || raw === null) {
          errors.push(`${p}: not an object`);
          return;
        }
        const r = raw as { key?: unknown; operator?: unknown; values?: unknown };
        const key = typeof r.key === "string" ? r.key : "";
        const kp = labelKeyProblem(key);
        if (kp !== undefined) errors.push(`${p}.key: ${kp}`);
        const op = r.operator;
        if (typeof op !== "string" || !operators.has(op)) {
          errors.push(`${p}.operator: ${JSON.stringify(op)} is not one of In, NotIn, Exists, DoesNotExist`);
          return;
        }
        const values = r.values === undefined || r.values === null ? [] : r.values;
        if (!Array.isArray(values) || values.some((v) => typeof v !== "string")) {
          errors.push(`${p}.values: must be a list of strings`);
          return;
        }
        const strings = values as string[];
        if ((op === "In" || op === "NotIn") && strings.length === 0)
          errors.push(`${p}.values: must be specified when operator is ${op}`);
        if ((op === "Exists" || op === "DoesNotExist") && strings.length > 0)
          errors.push(`${p}.values: may not be specified when operator is ${op}`);
        strings.forEach((v, j) => {
          const vp = labelValueProblem(v);
          if (vp !== undefined) errors.push(`${p}.values[${j}]: ${vp}`);
        });
        reqs.push({ key, operator: op as SelectorOperator, values: new Set(strings) });
      });
  }
  if (errors.length > 0) return { ok: false, errors };
  reqs.sort((a, b) => compareText(a.key, b.key) || compareText(a.operator, b.operator));
  const text = JSON.stringify(reqs.map((r) => [r.key, r.operator, [...r.values].sort(compareText)]));
  return { ok: true, selector: { requirements: reqs, text } };
}

/** Does the label set satisfy every requirement? */
export function matches(sel: Selector, labels: Labels): boolean {
  for (const r of sel.requirements) {
    const has = Object.hasOwn(labels, r.key);
    switch (r.operator) {
      case "In":
        if (!has || !r.values.has(labels[r.key] as string)) return false;
        break;
      case "NotIn":
        if (has && r.values.has(labels[r.key] as string)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/** Does the selector match every label set? */
export function isMatchAll(sel: Selector): boolean {
  return sel.requirements.length === 0;
}

/** Index bucket meaning "label `key` has value `value`". */
export function valueBucket(key: string, value: string): string {
  return `${key}\u0000${value}`;
}

/**
 * Buckets one of which every label set the selector matches must carry (see `labelBuckets`), or
 * undefined when the selector has no such anchor (only NotIn/DoesNotExist, or empty).
 */
export function selectorAnchors(sel: Selector): string[] | undefined {
  let exists: string | undefined;
  let inValues: Requirement | undefined;
  for (const r of sel.requirements) {
    if (r.operator === "In") {
      if (r.values.size === 1) return [valueBucket(r.key, [...r.values][0] as string)];
      if (inValues === undefined || r.values.size < inValues.values.size) inValues = r;
    } else if (r.operator === "Exists" && exists === undefined) exists = r.key;
  }
  if (inValues !== undefined) return [...inValues.values].map((v) => valueBucket(inValues.key, v));
  if (exists !== undefined) return [exists];
  return undefined;
}

/** Every bucket a label set belongs to: one per key and one per key/value pair. */
export function labelBuckets(labels: Labels, prefix = ""): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(labels)) out.push(prefix + k, prefix + valueBucket(k, v));
  return out;
}

/**
 * Items (selectors or things holding them) filed under anchor buckets, so that the candidates for
 * a label set are the items in its buckets plus the unanchored ones. Candidates still have to be
 * matched; the index only prunes. Not thread-aware; owned by one engine.
 */
export class SelectorIndex<T> {
  private readonly buckets = new Map<string, Set<T>>();
  private readonly filed = new Map<T, readonly string[]>();
  private static readonly UNANCHORED = "\u0001*";

  /** Files `item` under `anchors` (undefined = unanchored: a candidate for everything). */
  add(item: T, anchors: readonly string[] | undefined): void {
    this.delete(item);
    const keys = anchors === undefined || anchors.length === 0 ? [SelectorIndex.UNANCHORED] : anchors;
    this.filed.set(item, keys);
    for (const k of keys) {
      let set = this.buckets.get(k);
      if (set === undefined) this.buckets.set(k, (set = new Set()));
      set.add(item);
    }
  }

  /** Unfiles `item` (idempotent). */
  delete(item: T): void {
    const keys = this.filed.get(item);
    if (keys === undefined) return;
    this.filed.delete(item);
    for (const k of keys) {
      const set = this.buckets.get(k);
      if (set === undefined) continue;
      set.delete(item);
      if (set.size === 0) this.buckets.delete(k);
    }
  }

  /** Items filed under any of `buckets`, plus every unanchored item. */
  candidates(buckets: Iterable<string>): Set<T> {
    const out = new Set<T>(this.buckets.get(SelectorIndex.UNANCHORED));
    for (const b of buckets) {
      const set = this.buckets.get(b);
      if (set !== undefined) for (const item of set) out.add(item);
    }
    return out;
  }

  /** Number of items filed. */
  get size(): number {
    return this.filed.size;
  }
}
