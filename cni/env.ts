/** The CNI_* environment variables: which are required for which verb, and their validation. */
import { CniError, ErrorCode } from "./errors.js";

/** CNI_COMMAND values the plugin knows. */
export const COMMANDS = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"] as const;
/** One CNI_COMMAND value. */
export type Command = (typeof COMMANDS)[number];

/** What the runtime passed in the environment, validated for the verb. */
export interface Invocation {
  command: Command;
  /** CNI_CONTAINERID; "" for verbs without an attachment (VERSION, STATUS, GC). */
  containerId: string;
  /** CNI_NETNS; "" when absent (allowed for DEL). */
  netns: string;
  /** CNI_IFNAME; "" for verbs without an attachment. */
  ifname: string;
  /** CNI_ARGS parsed into key/value pairs, in order. */
  args: Map<string, string>;
  /** CNI_PATH split on ':'. Skein delegates to no other plugin, so it is informational. */
  path: string[];
}

const required: Record<Command, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  VERSION: [],
  STATUS: [],
  GC: [],
};

const containerIdPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function isCommand(s: string): s is Command {
  return (COMMANDS as readonly string[]).includes(s);
}

/**
 * Why `name` cannot be an interface name inside the container, or undefined when it can. Beyond the
 * kernel's rules (≤ 15 bytes, not . or .., no / : or whitespace) Skein refuses quotes, backslash and
 * '#', which iproute2's batch parser would read as syntax.
 */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  if (Buffer.byteLength(name) > 15) return "is longer than 15 bytes";
  if (name === "." || name === "..") return "is . or ..";
  if (/[/:\s]/u.test(name)) return "contains / or : or whitespace";
  if (/["'\\#]/.test(name)) return "contains a quote, backslash or #";
  return undefined;
}

/** Parses CNI_ARGS ("K1=V1;K2=V2"). Throws CniError 4 on a pair without '='. */
export function parseCniArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of text.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw new CniError(
        ErrorCode.invalidEnvironment,
        `CNI_ARGS: invalid pair ${JSON.stringify(pair)}`,
        "expected KEY=VALUE pairs separated by ';'",
      );
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

/**
 * Reads and validates the CNI_* variables for the verb in CNI_COMMAND. Throws CniError 4 naming
 * every missing or invalid variable.
 */
export function parseEnvironment(env: Readonly<Record<string, string | undefined>>): Invocation {
  const get = (name: string): string => env[name] ?? "";
  const command = get("CNI_COMMAND");
  if (command === "")
    throw new CniError(ErrorCode.invalidEnvironment, "required env variables [CNI_COMMAND] missing");
  if (!isCommand(command))
    throw new CniError(
      ErrorCode.invalidEnvironment,
      `CNI_COMMAND: unknown command ${JSON.stringify(command)}`,
      `expected one of ${COMMANDS.join(", ")}`,
    );
  const missing = required[command].filter((name) => get(name) === "");
  if (missing.length > 0)
    throw new CniError(ErrorCode.invalidEnvironment, `required env variables [${missing.join(",")}] missing`);

  const invocation: Invocation = {
    command,
    containerId: get("CNI_CONTAINERID"),
    netns: get("CNI_NETNS"),
    ifname: get("CNI_IFNAME"),
    args: required[command].length > 0 ? parseCniArgs(get("CNI_ARGS")) : new Map<string, string>(),
    path: get("CNI_PATH")
      .split(":")
      .filter((p) => p !== ""),
  };
  if (required[command].includes("CNI_CONTAINERID") && !containerIdPattern.test(invocation.containerId))
    throw new CniError(
      ErrorCode.invalidEnvironment,
      "CNI_CONTAINERID: invalid characters in container ID",
      invocation.containerId,
    );
  if (required[command].includes("CNI_IFNAME")) {
    const problem = interfaceNameProblem(invocation.ifname);
    if (problem !== undefined)
      throw new CniError(
        ErrorCode.invalidEnvironment,
        `CNI_IFNAME: interface name ${problem}`,
        invocation.ifname,
      );
  }
  // Only where the verb uses it: libcni validates configurations with VERSION and CNI_NETNS=dummy.
  if (required[command].length > 0 && invocation.netns !== "" && !invocation.netns.startsWith("/"))
    throw new CniError(ErrorCode.invalidEnvironment, "CNI_NETNS: not an absolute path", invocation.netns);
  return invocation;
}
