#!/usr/bin/env node
// The package's command. It is committed with its executable bit so that `npx swiftformer` works even
// when npm links the bin before `prepare` has built dist/ (tsc writes dist/cli/main.js without +x,
// and a cached npx install of the project does not chmod it again).
import '../dist/cli/main.js';
