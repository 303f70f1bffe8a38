#!/usr/bin/env node
// OpenVZ vps.mount: host modules and veth protection before a container starts.
import { runVzMount } from '../lib/openvz/hooks.js';

void runVzMount().then((code) => {
  process.exitCode = code;
});
