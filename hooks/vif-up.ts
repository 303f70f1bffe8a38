#!/usr/bin/env node
// Called by vif-guard.hook on `online` / `add`: protect one vif or tap.
import { runHotplug } from '../lib/xen/hook-main.js';

void runHotplug('up', process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
