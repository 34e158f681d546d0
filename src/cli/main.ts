#!/usr/bin/env node
/**
 * The `swiftformer` executable. `serve` first relaunches itself with the C allocator settings a
 * long-running server needs (serve/allocator.ts): that happens here, before the commands, the
 * runtime and the models are loaded, so that the launcher left waiting stays a bare Node process.
 */
import { needsRelaunch, relaunch } from '../serve/allocator.js';

const [command, ...rest] = process.argv.slice(2);
if (command === 'serve' && !rest.includes('--help') && !rest.includes('-h') && needsRelaunch()) process.exitCode = await relaunch();
else await import('./commands.js');
