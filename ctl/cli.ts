/**
 * skeinctl's dispatcher: parses argv, runs one command against injected output streams and returns
 * the exit code. Only main.ts exits.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { SysError } from "../loader/index.js";
import { DEFAULT_BPFFS_ROOT } from "../maps/pins.js";
import type { OutputFormat } from "./output.js";

/** Where a command writes; injected so tests and embedders capture output. */
export interface CtlIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Aborting it stops long-running commands (monitor) as SIGINT does; for callers that embed runCtl. */
  signal?: AbortSignal;
}

/** One invocation as a command sees it: parsed flags, positionals after the command's words, output form. */
export interface CtlContext {
  io: CtlIo;
  positionals: string[];
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  output: OutputFormat;
  bpffsRoot: string;
}

/**
 * A skeinctl command. `run` returns the exit code; it throws for failures (CtlError for ones the
 * user can fix, SysError from the kernel), which runCtl prints through explain() with exit code 1.
 */
export interface Command {
  /** e.g. "datapath load". */
  name: string;
  summary: string;
  usage: string;
  options?: ParseArgsConfig["options"];
  run(ctx: CtlContext): Promise<number> | number;
}

/** A user-facing failure: printed as `skeinctl: MESSAGE`, exit code 1. */
export class CtlError extends Error {
  override readonly name: string = "CtlError";
}

const common = {
  output: { type: "string", short: "o" },
  "bpffs-root": { type: "string" },
  // The agent's health/API address; only commands that ask the agent use it, all accept it.
  agent: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function helpText(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "skeinctl: inspect and operate a Skein node",
    "",
    "Usage: skeinctl COMMAND [flags]   (every command takes -o json|table, --bpffs-root DIR and --agent URL)",
    "",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
  ].join("\n");
}

/** Turns errors into one line naming the object and, where known, the fix. */
export function explain(err: unknown, bpffsRoot: string): string {
  if (err instanceof SysError) {
    if (err.code === "ENOENT" && err.object?.startsWith(bpffsRoot) === true)
      return `${err.message}: the datapath is not loaded under ${bpffsRoot} (start skein-agent, or run 'skeinctl datapath load --bpffs-root ${bpffsRoot}')`;
    if (err.code === "EPERM" || err.code === "EACCES")
      return `${err.message}: run as root (CAP_BPF and CAP_NET_ADMIN are needed)`;
    return err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Runs skeinctl with `argv` (without node and script). Returns the exit code. */
export async function runCtl(
  argv: readonly string[],
  io: CtlIo,
  commands: readonly Command[],
): Promise<number> {
  // Longest command name that prefixes argv wins ("datapath load" before "datapath").
  const sorted = [...commands].sort((a, b) => b.name.split(" ").length - a.name.split(" ").length);
  const words = argv.filter((a) => !a.startsWith("-"));
  const cmd = sorted.find((c) => {
    const parts = c.name.split(" ");
    return parts.every((p, i) => words[i] === p);
  });
  if (cmd === undefined) {
    if (argv.length === 0 || argv.includes("-h") || argv.includes("--help") || argv[0] === "help") {
      io.stdout(helpText(commands));
      return argv.length === 0 ? 2 : 0;
    }
    io.stderr(`skeinctl: unknown command "${words.slice(0, 2).join(" ")}"\n\n${helpText(commands)}`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...common, ...cmd.options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    io.stderr(`skeinctl ${cmd.name}: ${(err as Error).message}\nusage: skeinctl ${cmd.usage}\n`);
    return 2;
  }
  if (parsed.values.help === true) {
    io.stdout(`usage: skeinctl ${cmd.usage}\n\n${cmd.summary}\n`);
    return 0;
  }
  const outputValue = parsed.values.output;
  if (outputValue !== undefined && outputValue !== "json" && outputValue !== "table") {
    io.stderr(`skeinctl ${cmd.name}: -o must be json or table, not ${outputValue}\n`);
    return 2;
  }
  const bpffsRoot =
    typeof parsed.values["bpffs-root"] === "string" ? parsed.values["bpffs-root"] : DEFAULT_BPFFS_ROOT;
  const ctx: CtlContext = {
    io,
    positionals: parsed.positionals.slice(cmd.name.split(" ").length),
    values: parsed.values,
    output: outputValue ?? "table",
    bpffsRoot,
  };
  try {
    return await cmd.run(ctx);
  } catch (err) {
    io.stderr(`skeinctl ${cmd.name}: ${explain(err, bpffsRoot)}\n`);
    return 1;
  }
}
