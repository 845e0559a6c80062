/** Every skeinctl command. */
import type { Command } from "../cli.js";
import { datapathLoad, datapathUnload } from "./datapath.js";
import { endpointList } from "./endpoint.js";

export const COMMANDS: readonly Command[] = [datapathLoad, datapathUnload, endpointList];
