/** What every verb receives from the dispatcher. */
import type { NetworkConfig } from "./config.js";
import type { Invocation } from "./env.js";
import type { Kernel } from "./kernel.js";

/** The steps of ADD, in order; fault injection names them. */
export const ADD_STEPS = ["ipam", "veth", "pod", "tc", "endpoint"] as const;
/** One step of ADD. */
export type AddStep = (typeof ADD_STEPS)[number];

/** A verb's inputs. Holds nothing that needs closing. */
export interface VerbContext {
  kernel: Kernel;
  invocation: Invocation;
  config: NetworkConfig;
  /**
   * Testing hook (SKEIN_CNI_TEST_FAIL_AFTER): ADD fails right after this step succeeded, so tests
   * can prove every undo path leaves nothing behind.
   */
  failAfter?: AddStep;
  /** Diagnostics for stderr (the runtime logs them). */
  log: (message: string) => void;
}
