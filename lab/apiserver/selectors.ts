/**
 * Label and field selectors, parsed from the query-string syntax kube-apiserver accepts and matched
 * against stored objects. Parse errors are 400 BadRequest {@link ApiError}s, as on the real server.
 */
import { badRequest } from "./errors.js";
import { isJsonObject, jsonText, type JsonObject, type JsonValue } from "./json.js";

/** A label selector operator (the string syntax's spelling of metav1.LabelSelectorOperator). */
export type LabelOperator = "=" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";

/** One requirement of a label selector: `key op values`. */
export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  /** Empty for `exists`/`!`; one value for `=`, `!=`, `gt`, `lt`. */
  values: string[];
}

/** A parsed label selector; all requirements must hold (AND). */
export interface LabelSelector {
  requirements: LabelRequirement[];
}

/** One term of a field selector: `field=value` or `field!=value`. */
export interface FieldRequirement {
  field: string;
  operator: "=" | "!=";
  value: string;
}

/** A parsed field selector; all terms must hold (AND). */
export interface FieldSelector {
  requirements: FieldRequirement[];
}

const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a valid label key (a qualified name), or undefined when it is. */
export function labelKeyError(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (
    prefix !== undefined &&
    (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix))
  ) {
    return "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters";
  }
  if (name.length === 0 || name.length > 63 || !NAME_RE.test(name)) {
    return "name part must consist of at most 63 alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

/** Why `value` is not a valid label value, or undefined when it is. */
export function labelValueError(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63 || !NAME_RE.test(value)) {
    return "a valid label must be an empty string or consist of at most 63 alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

type Token =
  | { kind: "id"; text: string }
  | { kind: "op"; text: "!" | "=" | "==" | "!=" | "(" | ")" | "," | ">" | "<" }
  | { kind: "end" };

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = input.slice(i, i + 2);
    if (two === "==" || two === "!=") {
      tokens.push({ kind: "op", text: two });
      i += 2;
      continue;
    }
    if (c === "!" || c === "=" || c === "(" || c === ")" || c === "," || c === ">" || c === "<") {
      tokens.push({ kind: "op", text: c });
      i++;
      continue;
    }
    let j = i;
    while (j < input.length && !/[\s!=(),<>]/.test(input[j] as string)) j++;
    tokens.push({ kind: "id", text: input.slice(i, j) });
    i = j;
  }
  tokens.push({ kind: "end" });
  return tokens;
}

function selectorError(input: string, why: string): Error {
  return badRequest(`unable to parse requirement: ${why} (in label selector "${input}")`);
}

/**
 * Parses a label selector string (`a=b,c!=d,e in (x,y),!f,g`). An empty string selects
 * everything. Throws a 400 {@link ApiError} on bad syntax or invalid keys/values.
 */
export function parseLabelSelector(input: string): LabelSelector {
  const tokens = tokenize(input);
  let pos = 0;
  const peek = (): Token => tokens[pos] as Token;
  const next = (): Token => tokens[pos++] as Token;
  const requirements: LabelRequirement[] = [];
  if (peek().kind === "end") return { requirements };

  const readKey = (): string => {
    const t = next();
    if (t.kind !== "id")
      throw selectorError(
        input,
        `expected a label key, found ${t.kind === "op" ? `'${t.text}'` : "end of input"}`,
      );
    const err = labelKeyError(t.text);
    if (err !== undefined) throw selectorError(input, `invalid label key "${t.text}": ${err}`);
    return t.text;
  };
  const readValue = (allowEmpty: boolean): string => {
    const t = peek();
    if (t.kind !== "id") {
      if (allowEmpty) return "";
      throw selectorError(input, "expected a value");
    }
    pos++;
    const err = labelValueError(t.text);
    if (err !== undefined) throw selectorError(input, `invalid label value "${t.text}": ${err}`);
    return t.text;
  };

  for (;;) {
    const first = peek();
    if (first.kind === "op" && first.text === "!") {
      pos++;
      requirements.push({ key: readKey(), operator: "!", values: [] });
    } else {
      const key = readKey();
      const t = peek();
      if (t.kind === "end" || (t.kind === "op" && t.text === ",")) {
        requirements.push({ key, operator: "exists", values: [] });
      } else if (t.kind === "op" && (t.text === "=" || t.text === "==" || t.text === "!=")) {
        pos++;
        requirements.push({ key, operator: t.text === "!=" ? "!=" : "=", values: [readValue(true)] });
      } else if (t.kind === "op" && (t.text === ">" || t.text === "<")) {
        pos++;
        const v = readValue(false);
        if (!/^-?\d+$/.test(v))
          throw selectorError(input, `for 'Gt', 'Lt' operators, the value must be an integer, got "${v}"`);
        requirements.push({ key, operator: t.text === ">" ? "gt" : "lt", values: [v] });
      } else if (t.kind === "id" && (t.text === "in" || t.text === "notin")) {
        pos++;
        const open = next();
        if (!(open.kind === "op" && open.text === "("))
          throw selectorError(input, `expected '(' after '${t.text}'`);
        const close = peek();
        if (close.kind === "op" && close.text === ")")
          throw selectorError(input, `for '${t.text}' operator, the values set can't be empty`);
        const values: string[] = [];
        for (;;) {
          values.push(readValue(true));
          const sep = next();
          if (sep.kind === "op" && sep.text === ")") break;
          if (!(sep.kind === "op" && sep.text === ","))
            throw selectorError(input, "expected ',' or ')' in a value set");
        }
        requirements.push({ key, operator: t.text, values });
      } else {
        throw selectorError(input, `found '${t.text}', expected: in, notin, =, ==, !=, gt, lt`);
      }
    }
    const sep = next();
    if (sep.kind === "end") break;
    if (!(sep.kind === "op" && sep.text === ","))
      throw selectorError(input, `found '${sep.text}', expected: ','`);
  }
  return { requirements };
}

/** True when `labels` satisfy every requirement of `selector`. */
export function matchesLabels(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return selector.requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const value = has ? labels[r.key] : undefined;
    switch (r.operator) {
      case "exists":
        return has;
      case "!":
        return !has;
      case "=":
      case "in":
        return value !== undefined && r.values.includes(value);
      case "!=":
      case "notin":
        return value === undefined || !r.values.includes(value);
      case "gt":
      case "lt": {
        if (value === undefined || !/^-?\d+$/.test(value)) return false;
        const have = Number(value);
        const want = Number(r.values[0]);
        return r.operator === "gt" ? have > want : have < want;
      }
    }
  });
}

/** The string labels of an object's `metadata.labels` (non-string values are ignored). */
export function labelsOf(obj: JsonObject): Record<string, string> {
  const meta = obj.metadata;
  const labels = isJsonObject(meta) ? meta.labels : undefined;
  const out: Record<string, string> = {};
  if (isJsonObject(labels)) {
    for (const [k, v] of Object.entries(labels)) if (typeof v === "string") out[k] = v;
  }
  return out;
}

/**
 * Parses a field selector string (`metadata.name=x,spec.nodeName!=n1`); `\,`, `\=` and `\\`
 * escape. An empty string selects everything. Throws a 400 {@link ApiError} on bad syntax.
 */
export function parseFieldSelector(input: string): FieldSelector {
  const requirements: FieldRequirement[] = [];
  if (input.trim() === "") return { requirements };
  const terms: string[] = [];
  let cur = "";
  for (let i = 0; i < input.length; i++) {
    const c = input[i] as string;
    if (c === "\\" && i + 1 < input.length) {
      cur += c + (input[i + 1] as string);
      i++;
    } else if (c === ",") {
      terms.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  terms.push(cur);
  for (const term of terms) {
    const m = findFieldOperator(term);
    if (m === undefined) throw badRequest(`invalid selector: '${input}'; can't understand '${term}'`);
    const field = term.slice(0, m.index).trim();
    if (field === "") throw badRequest(`invalid selector: '${input}'; can't understand '${term}'`);
    const value = unescapeFieldValue(term.slice(m.index + m.op.length), input);
    requirements.push({ field, operator: m.op === "!=" ? "!=" : "=", value });
  }
  return { requirements };
}

function findFieldOperator(term: string): { index: number; op: "!=" | "==" | "=" } | undefined {
  for (let i = 0; i < term.length; i++) {
    const c = term[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "!" && term[i + 1] === "=") return { index: i, op: "!=" };
    if (c === "=") return { index: i, op: term[i + 1] === "=" ? "==" : "=" };
  }
  return undefined;
}

function unescapeFieldValue(raw: string, input: string): string {
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string;
    if (c === "\\") {
      const n = raw[i + 1];
      if (n !== "\\" && n !== "," && n !== "=")
        throw badRequest(`invalid field selector: '${input}': invalid escape sequence`);
      out += n;
      i++;
    } else if (c === "=" || c === ",") {
      throw badRequest(`invalid field selector: '${input}': unescaped '${c}' in value`);
    } else {
      out += c;
    }
  }
  return out;
}

/**
 * True when every term holds, reading field values with `fieldValue` (which returns undefined for
 * a field the resource does not support; that case is rejected earlier by the caller).
 */
export function matchesFields(
  selector: FieldSelector,
  fieldValue: (field: string) => string | undefined,
): boolean {
  return selector.requirements.every((r) => {
    const v = fieldValue(r.field) ?? "";
    return r.operator === "=" ? v === r.value : v !== r.value;
  });
}

/**
 * metav1.FormatLabelSelector: a structured selector (matchLabels/matchExpressions) as a string,
 * `<none>` when it selects everything. Used for table cells (NetworkPolicy POD-SELECTOR).
 */
export function formatLabelSelector(selector: JsonValue | undefined): string {
  if (!isJsonObject(selector)) return "<none>";
  const parts: string[] = [];
  const ml = selector.matchLabels;
  if (isJsonObject(ml)) {
    for (const k of Object.keys(ml).sort()) parts.push(`${k}=${jsonText(ml[k])}`);
  }
  const me = selector.matchExpressions;
  if (Array.isArray(me)) {
    for (const e of me) {
      if (!isJsonObject(e)) continue;
      const key = jsonText(e.key);
      const values = Array.isArray(e.values) ? e.values.map((v) => jsonText(v)).join(",") : "";
      const op = e.operator;
      if (op === "In") parts.push(`${key} in (${values})`);
      else if (op === "NotIn") parts.push(`${key} notin (${values})`);
      else if (op === "Exists") parts.push(key);
      else if (op === "DoesNotExist") parts.push(`!${key}`);
      else parts.push(`${key} ${jsonText(op)} (${values})`);
    }
  }
  return parts.length === 0 ? "<none>" : parts.join(",");
}
