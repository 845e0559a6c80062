/**
 * Field errors as k8s.io/apimachinery's `field.Error` renders them into a `Status` cause:
 * `Required value`, `Invalid value: <value>: <detail>`, `Unsupported value: "x": supported
 * values: "a", "b"`, `Duplicate value: <value>`, `Forbidden: <detail>`. Values are printed the
 * way Go's `%q`/`%v`/`%#v` print them (strings quoted, numbers bare, string lists as
 * `[]string{"a"}`), so messages match the real server's character for character where clients or
 * people compare them.
 */
import type { StatusCause } from "./errors.js";

/** A value rendered Go-style: build with {@link goString}, {@link goStrings} or a number. */
export type GoValue = string | number | { readonly go: string };

/** A value printed as Go's `%#v` would (already formatted). */
export function goRaw(text: string): GoValue {
  return { go: text };
}

/** `[]string{"a", "b"}`. */
export function goStrings(values: readonly string[]): GoValue {
  return goRaw(`[]string{${values.map((v) => JSON.stringify(v)).join(", ")}}`);
}

function render(value: GoValue): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") return String(value);
  return value.go;
}

/** Collects the causes of one validation pass, in the order the real validators append them. */
export class FieldErrors {
  readonly causes: StatusCause[] = [];

  required(field: string, detail = ""): this {
    this.causes.push({
      reason: "FieldValueRequired",
      field,
      message: detail === "" ? "Required value" : `Required value: ${detail}`,
    });
    return this;
  }

  invalid(field: string, value: GoValue, detail: string): this {
    this.causes.push({
      reason: "FieldValueInvalid",
      field,
      message: `Invalid value: ${render(value)}${detail === "" ? "" : `: ${detail}`}`,
    });
    return this;
  }

  notSupported(field: string, value: GoValue, supported: readonly string[]): this {
    this.causes.push({
      reason: "FieldValueNotSupported",
      field,
      message: `Unsupported value: ${render(value)}: supported values: ${supported.map((s) => JSON.stringify(s)).join(", ")}`,
    });
    return this;
  }

  duplicate(field: string, value: GoValue): this {
    this.causes.push({ reason: "FieldValueDuplicate", field, message: `Duplicate value: ${render(value)}` });
    return this;
  }

  forbidden(field: string, detail: string): this {
    this.causes.push({ reason: "FieldValueForbidden", field, message: `Forbidden: ${detail}` });
    return this;
  }

  tooMany(field: string, actual: number, max: number): this {
    this.causes.push({
      reason: "FieldValueTooMany",
      field,
      message: `Too many: ${actual}: must have at most ${max} items`,
    });
    return this;
  }

  get empty(): boolean {
    return this.causes.length === 0;
  }
}

const DNS1123_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL_RE = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** k8s.io/apimachinery's IsDNS1123Label messages; empty when valid. */
export function dns1123LabelErrors(value: string): string[] {
  const out: string[] = [];
  if (value.length > 63) out.push("must be no more than 63 characters");
  if (!DNS1123_LABEL_RE.test(value))
    out.push(
      "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    );
  return out;
}

/** IsDNS1035Label messages (Service names); empty when valid. */
export function dns1035LabelErrors(value: string): string[] {
  const out: string[] = [];
  if (value.length > 63) out.push("must be no more than 63 characters");
  if (!DNS1035_LABEL_RE.test(value))
    out.push(
      "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    );
  return out;
}

/** IsDNS1123Subdomain messages; empty when valid. */
export function dns1123SubdomainErrors(value: string): string[] {
  const out: string[] = [];
  if (value.length > 253) out.push("must be no more than 253 characters");
  if (!DNS1123_SUBDOMAIN_RE.test(value))
    out.push(
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
  return out;
}

/** IsValidPortNum's message; undefined when 1..65535. */
export function portNumError(port: number): string | undefined {
  return Number.isInteger(port) && port >= 1 && port <= 65535
    ? undefined
    : "must be between 1 and 65535, inclusive";
}

/** IsValidPortName's messages (an IANA_SVC_NAME); empty when valid. */
export function portNameErrors(name: string): string[] {
  const out: string[] = [];
  if (name.length > 15) out.push("must be no more than 15 characters");
  if (!/^[-a-z0-9]+$/.test(name))
    out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  if (!/[a-z]/.test(name)) out.push("must contain at least one letter (a-z)");
  if (name.includes("--")) out.push("must not contain consecutive hyphens (--)");
  if (name.startsWith("-") || name.endsWith("-")) out.push("must not begin or end with a hyphen (-)");
  return out;
}

/**
 * ValidateNonSpecialIP's message for an IPv4 address given as four octets; undefined when the
 * address may be used (not unspecified, loopback, link-local or link-local multicast).
 */
export function specialIPv4Error(octets: readonly number[]): string | undefined {
  const [a, b, c] = octets;
  if (octets.every((o) => o === 0)) return "may not be unspecified (0.0.0.0)";
  if (a === 127) return "may not be in the loopback range (127.0.0.0/8, ::1/128)";
  if (a === 169 && b === 254) return "may not be in the link-local range (169.254.0.0/16, fe80::/10)";
  if (a === 224 && b === 0 && c === 0)
    return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)";
  return undefined;
}
