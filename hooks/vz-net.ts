#!/usr/bin/env node
// OpenVZ vznet.conf EXTERNAL_SCRIPT: protect one veth as vznetcfg brings it up.
import { runVzNet } from '../lib/openvz/hooks.js';

void runVzNet(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
