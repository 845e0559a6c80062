/** The policy compiler the agent runs with. */
import { PolicyEngine } from "./policy/engine.js";
import type { PolicySource } from "./policy-source.js";

export function createPolicySource(nodeName: string): PolicySource {
  return new PolicyEngine({ nodeName });
}
