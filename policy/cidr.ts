/**
 * ipBlock peers: CIDR validation as the API server does it, and a binary trie of the prefixes
 * the policies mention (longest match for an address, every known prefix inside a block).
 */
import { BlockList, isIPv6 } from "node:net";
import { formatIPv4, formatPrefix, maskIPv4, parseIPv4, type Prefix } from "../maps/net.js";

/** An IPv4 ipBlock: allows addresses in `cidr` outside every `except`. */
export interface Block {
  readonly cidr: Prefix;
  readonly except: readonly Prefix[];
}

type ParsedCidr = { family: 4; prefix: Prefix } | { family: 6; address: string; length: number };

/**
 * Parses `a.b.c.d/n` or an IPv6 CIDR; undefined when it is neither. Host bits are cleared and
 * leading zeros read as decimal, as the API server's legacy CIDR parsing accepts them.
 */
export function parseCidr(text: unknown): ParsedCidr | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const addr = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) return undefined;
  const length = Number(lenText);
  if (isIPv6(addr)) return length <= 128 ? { family: 6, address: addr, length } : undefined;
  if (length > 32) return undefined;
  try {
    return { family: 4, prefix: { ip: formatIPv4(maskIPv4(parseIPv4(addr), length)), length } };
  } catch {
    return undefined;
  }
}

/** Result of compiling an ipBlock: an IPv4 block, nothing (IPv6: no IPv4 address matches it), or errors. */
export type BlockResult = { ok: true; block: Block | undefined } | { ok: false; errors: string[] };

/**
 * Validates an ipBlock: `cidr` a CIDR, each `except` a CIDR strictly inside it. An IPv6 block is
 * valid but matches no traffic in Skein's IPv4 datapath, so it yields no block. `input` is
 * normally a V1IPBlock; anything else is reported, never thrown.
 */
export function compileIpBlock(input: unknown, path: string): BlockResult {
  if (typeof input !== "object" || input === null) return { ok: false, errors: [`${path}: not an object`] };
  const raw = input as { cidr?: unknown; except?: unknown };
  const cidr = parseCidr(raw.cidr);
  if (cidr === undefined)
    return { ok: false, errors: [`${path}.cidr: ${JSON.stringify(raw.cidr)} is not a valid CIDR`] };
  const errors: string[] = [];
  const except: Prefix[] = [];
  const list: unknown = raw.except ?? [];
  if (!Array.isArray(list)) return { ok: false, errors: [`${path}.except: not a list`] };
  list.forEach((text: unknown, i) => {
    const p = `${path}.except[${i}]`;
    const e = parseCidr(text);
    if (e === undefined) {
      errors.push(`${p}: ${JSON.stringify(text)} is not a valid CIDR`);
      return;
    }
    if (!strictlyInside(e, cidr)) {
      errors.push(
        `${p}: ${JSON.stringify(text)} must be a strict subset of cidr ${JSON.stringify(raw.cidr)}`,
      );
      return;
    }
    if (e.family === 4) except.push(e.prefix);
  });
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, block: cidr.family === 4 ? { cidr: cidr.prefix, except } : undefined };
}

function strictlyInside(inner: ParsedCidr, outer: ParsedCidr): boolean {
  if (inner.family === 4 && outer.family === 4)
    return inner.prefix.length > outer.prefix.length && prefixWithin(inner.prefix, outer.prefix);
  if (inner.family === 6 && outer.family === 6) {
    if (inner.length <= outer.length) return false;
    const list = new BlockList();
    list.addSubnet(outer.address, outer.length, "ipv6");
    return list.check(inner.address, "ipv6");
  }
  return false;
}

/** Is `inner` inside `outer` (equal counts)? */
export function prefixWithin(inner: Prefix, outer: Prefix): boolean {
  return outer.length <= inner.length && maskIPv4(parseIPv4(inner.ip), outer.length) === parseIPv4(outer.ip);
}

/** Does the block allow every address of `p` (p inside cidr, not inside any except)? */
export function blockAllowsPrefix(block: Block, p: Prefix): boolean {
  return prefixWithin(p, block.cidr) && !block.except.some((e) => prefixWithin(p, e));
}

/** Does the block allow address `ip`? */
export function blockAllowsIp(block: Block, ip: string): boolean {
  return blockAllowsPrefix(block, { ip, length: 32 });
}

/** Canonical text of a block, for fingerprints. */
export function blockText(b: Block): string {
  return [formatPrefix(b.cidr), ...b.except.map(formatPrefix)].join(" except ");
}

interface TrieNode<V> {
  zero: TrieNode<V> | undefined;
  one: TrieNode<V> | undefined;
  value: V | undefined;
  present: boolean;
}

function bitAt(ip: number, i: number): number {
  return (ip >>> (31 - i)) & 1;
}

/** A binary trie of IPv4 prefixes: exact get/set/delete, longest match, and the prefixes under one. */
export class PrefixTrie<V> {
  private readonly root: TrieNode<V> = { zero: undefined, one: undefined, value: undefined, present: false };
  private count = 0;

  /** Number of stored prefixes. */
  get size(): number {
    return this.count;
  }

  private walk(p: Prefix, create: boolean): TrieNode<V> | undefined {
    const ip = parseIPv4(p.ip);
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; i < p.length && node !== undefined; i++) {
      const side: "zero" | "one" = bitAt(ip, i) === 0 ? "zero" : "one";
      let next: TrieNode<V> | undefined = node[side];
      if (next === undefined && create)
        node[side] = next = { zero: undefined, one: undefined, value: undefined, present: false };
      node = next;
    }
    return node;
  }

  /** The value stored at exactly `p`. */
  get(p: Prefix): V | undefined {
    const n = this.walk(p, false);
    return n?.present === true ? n.value : undefined;
  }

  /** Stores `value` at exactly `p` (replacing any). */
  set(p: Prefix, value: V): void {
    const n = this.walk(p, true) as TrieNode<V>;
    if (!n.present) this.count++;
    n.present = true;
    n.value = value;
  }

  /** Removes exactly `p`; false when it was not stored. */
  delete(p: Prefix): boolean {
    const ip = parseIPv4(p.ip);
    const path: TrieNode<V>[] = [this.root];
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; i < p.length; i++) {
      node = bitAt(ip, i) === 0 ? node.zero : node.one;
      if (node === undefined) return false;
      path.push(node);
    }
    if (!node.present) return false;
    node.present = false;
    node.value = undefined;
    this.count--;
    // Prune empty leaves back towards the root.
    for (let i = p.length; i > 0; i--) {
      const n = path[i] as TrieNode<V>;
      if (n.present || n.zero !== undefined || n.one !== undefined) break;
      const parent = path[i - 1] as TrieNode<V>;
      if (bitAt(ip, i - 1) === 0) parent.zero = undefined;
      else parent.one = undefined;
    }
    return true;
  }

  /** The longest stored prefix containing all of `p` (for an address, pass it as /32). */
  longestMatch(p: Prefix): { prefix: Prefix; value: V } | undefined {
    const ip = parseIPv4(p.ip);
    let node: TrieNode<V> | undefined = this.root;
    let best: { length: number; value: V } | undefined;
    for (let i = 0; node !== undefined; i++) {
      if (node.present) best = { length: i, value: node.value as V };
      if (i === p.length) break;
      node = bitAt(ip, i) === 0 ? node.zero : node.one;
    }
    if (best === undefined) return undefined;
    return { prefix: { ip: formatIPv4(maskIPv4(ip, best.length)), length: best.length }, value: best.value };
  }

  /** Every stored prefix inside `p` (including `p` itself), with its value. */
  *within(p: Prefix): Generator<{ prefix: Prefix; value: V }> {
    const start = this.walk(p, false);
    if (start === undefined) return;
    const base = parseIPv4(p.ip);
    const stack: { node: TrieNode<V>; ip: number; length: number }[] = [
      { node: start, ip: base, length: p.length },
    ];
    while (stack.length > 0) {
      const { node, ip, length } = stack.pop() as { node: TrieNode<V>; ip: number; length: number };
      if (node.present) yield { prefix: { ip: formatIPv4(ip), length }, value: node.value as V };
      if (length === 32) continue;
      if (node.one !== undefined)
        stack.push({ node: node.one, ip: (ip | (1 << (31 - length))) >>> 0, length: length + 1 });
      if (node.zero !== undefined) stack.push({ node: node.zero, ip, length: length + 1 });
    }
  }

  /** Every stored prefix containing `p` (including `p` itself), shortest first. */
  *containing(p: Prefix): Generator<{ prefix: Prefix; value: V }> {
    const ip = parseIPv4(p.ip);
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; node !== undefined; i++) {
      if (node.present)
        yield { prefix: { ip: formatIPv4(maskIPv4(ip, i)), length: i }, value: node.value as V };
      if (i === p.length) break;
      node = bitAt(ip, i) === 0 ? node.zero : node.one;
    }
  }
}
