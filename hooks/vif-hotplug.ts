#!/usr/bin/env node
// libxl's own contract (`online type_if=vif`, env vif / XENBUS_PATH): used by the standalone vif-guard script.
import { runHotplug } from '../lib/xen/hook-main.js';

void runHotplug('libxl', process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
