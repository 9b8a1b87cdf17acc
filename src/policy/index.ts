export { loadPolicy, normalize, policyFiles, type LoadResult, type LoadOptions } from './load.js';
export { formatProblem, type Policy, type PoolConfig, type EmitterConfig, type PlatformConfig, type Problem, type Scaling, type Schedule, type Backend } from './types.js';
export { parseDuration, formatDuration } from './duration.js';
export { resolveSecret, parseSecretRef, redact, SecretResolutionError, type SecretEnv } from './secrets.js';
export { policyJsonSchema } from './schema.js';
