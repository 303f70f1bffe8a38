#!/usr/bin/env node
// Called by vif-guard.hook on `offline` / `remove`: remove one vif's rules; never fails the teardown.
import { runHotplug } from '../lib/xen/hook-main.js';

void runHotplug('down', process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
