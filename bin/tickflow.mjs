#!/usr/bin/env node
// Runs the TypeScript CLI in this very process through tsx's loader (no build step), so signals
// such as `docker stop`'s SIGTERM reach the code that finishes the work in hand.
import { register } from "tsx/esm/api"

register()
await import("../src/cli/main.ts")
