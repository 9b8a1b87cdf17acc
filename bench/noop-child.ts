/** Runs the 50-pool no-op cycle in a fresh process and prints its figures as JSON (see noopCycle50). */
import { noopCycleInThisProcess } from './cases/reconcile.js';

process.stdout.write(JSON.stringify(await noopCycleInThisProcess()));
