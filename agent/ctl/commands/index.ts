/** Every skeinctl command. */
import type { Command } from "../cli.js";
import { datapathLoad, datapathUnload } from "./datapath.js";
import { endpointList } from "./endpoint.js";
import { policySimulate } from "./policy.js";

export const COMMANDS: readonly Command[] = [datapathLoad, datapathUnload, endpointList, policySimulate];
