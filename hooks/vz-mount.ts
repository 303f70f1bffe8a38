#!/usr/bin/env node
// OpenVZ vps.mount: host modules and veth protection before a container starts.
import { runVzMount } from '../lib/openvz/hooks.js';

process.exitCode = await runVzMount();
