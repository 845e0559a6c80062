/**
 * The one entry point of skein-cni: environment and stdin in, result or error JSON out, exit code
 * returned. Everything it touches is injected (env, stdin, stdout, stderr, the kernel), so it runs
 * unprivileged in unit tests; only main.ts exits.
 */
import { ADD_STEPS, type AddStep, type VerbContext } from "./context.js";
import { configVersion, decodeConfig, field, parseNetworkConfig } from "./config.js";
import { parseEnvironment, type Command, type Invocation } from "./env.js";
import { CniError, ErrorCode, describe, toErrorResult } from "./errors.js";
import type { Kernel } from "./kernel.js";
import { trace } from "./trace.js";
import {
  CURRENT_VERSION,
  SUPPORTED_VERSIONS,
  compareVersions,
  formatResult,
  isSupportedVersion,
  versionResult,
} from "./spec.js";

/** Where output goes (process.stdout or a test buffer). */
export interface Writable {
  write(chunk: string): unknown;
}

/** The process's side of an invocation, injected so tests need no process. */
export interface DispatchIo {
  env: Readonly<Record<string, string | undefined>>;
  /** Reads all of stdin. Called at most once; may throw (code 5). */
  readStdin: () => string | Uint8Array;
  stdout: Writable;
  stderr: Writable;
}

/** What the dispatcher acts on. */
export interface DispatchOptions {
  /**
   * The node to act on; the real one (LinuxKernel) unless a test substitutes a fake. A factory is
   * only called for verbs that touch the node, so VERSION never loads libbpf.
   */
  kernel: Kernel | (() => Kernel | Promise<Kernel>);
}

/** Oldest config version each verb exists in. */
const introducedIn: Record<Command, string> = {
  ADD: "0.1.0",
  DEL: "0.1.0",
  VERSION: "0.1.0",
  CHECK: "0.4.0",
  STATUS: "1.1.0",
  GC: "1.1.0",
};

const ABOUT = `skein-cni: Skein's CNI plugin (eBPF datapath). CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`;

function isAddStep(s: string): s is AddStep {
  return (ADD_STEPS as readonly string[]).includes(s);
}

/**
 * Runs one CNI invocation. Writes the result (ADD, VERSION) or an error object to stdout and a
 * diagnostic line to stderr on failure. Resolves to the process exit code (0 on success); never
 * rejects. The verbs are imported on first use: VERSION (which runtimes call before every ADD and
 * DEL) then loads neither libbpf nor koffi.
 */
export async function dispatch(io: DispatchIo, options: DispatchOptions): Promise<number> {
  let stdin: string | undefined;
  const readStdin = (): string => {
    if (stdin === undefined) {
      try {
        const data = io.readStdin();
        stdin = typeof data === "string" ? data : Buffer.from(data).toString("utf8");
      } catch (err) {
        throw new CniError(
          ErrorCode.ioFailure,
          "error reading network configuration from stdin",
          describe(err),
          { cause: err },
        );
      }
    }
    return stdin;
  };
  // The version errors are reported in: the configuration's, when it names one we speak.
  const errorVersion = (): string => {
    try {
      const v = field(decodeConfig(readStdin()), "cniVersion");
      return typeof v === "string" && isSupportedVersion(v) ? v : CURRENT_VERSION;
    } catch {
      return CURRENT_VERSION;
    }
  };
  const log = (message: string): void => {
    io.stderr.write(`skein-cni: ${message}\n`);
  };

  let invocation: Invocation | undefined;
  try {
    invocation = parseEnvironment(io.env);
    if (invocation.command === "VERSION") {
      let requested: string | undefined;
      try {
        const v = field(decodeConfig(readStdin()), "cniVersion");
        if (typeof v === "string") requested = v;
      } catch {
        // VERSION answers whatever stdin holds
      }
      io.stdout.write(JSON.stringify(versionResult(requested)) + "\n");
      return 0;
    }
    const decoded = decodeConfig(readStdin());
    const version = configVersion(decoded);
    if (compareVersions(version, introducedIn[invocation.command]) < 0)
      throw new CniError(
        ErrorCode.incompatibleVersion,
        `config version ${version} does not allow ${invocation.command}`,
        `${invocation.command} exists from CNI ${introducedIn[invocation.command]} on`,
      );
    const config = parseNetworkConfig(decoded);
    const kernel = typeof options.kernel === "function" ? await options.kernel() : options.kernel;
    trace("kernel loaded");
    const ctx: VerbContext = { kernel, invocation, config, log };
    const failAfter = io.env.SKEIN_CNI_TEST_FAIL_AFTER;
    if (failAfter !== undefined && failAfter !== "") {
      if (!isAddStep(failAfter))
        throw new CniError(
          ErrorCode.invalidEnvironment,
          `SKEIN_CNI_TEST_FAIL_AFTER: unknown step ${failAfter}`,
          `steps: ${ADD_STEPS.join(", ")}`,
        );
      ctx.failAfter = failAfter;
    }
    switch (invocation.command) {
      case "ADD": {
        const { add } = await import("./add.js");
        io.stdout.write(JSON.stringify(formatResult(add(ctx), config.cniVersion)) + "\n");
        return 0;
      }
      case "DEL": {
        const { del } = await import("./del.js");
        await del(ctx);
        return 0;
      }
      case "CHECK": {
        const { check } = await import("./check.js");
        check(ctx);
        return 0;
      }
      case "STATUS": {
        const { status } = await import("./status.js");
        status(kernel, config);
        return 0;
      }
      case "GC": {
        const { gc } = await import("./gc.js");
        gc(ctx);
        return 0;
      }
    }
  } catch (err) {
    if (io.env.CNI_COMMAND === undefined || io.env.CNI_COMMAND === "") io.stderr.write(ABOUT);
    const result = toErrorResult(err, errorVersion());
    const what =
      invocation === undefined
        ? ""
        : ` ${invocation.command}${invocation.containerId === "" ? "" : ` ${invocation.containerId}/${invocation.ifname}`}`;
    log(`error${what}: [${result.code}] ${result.msg}${result.details === "" ? "" : `: ${result.details}`}`);
    io.stdout.write(JSON.stringify(result) + "\n");
    return 1;
  }
}
