// Public surface of the run queue (src/queue): runs as BullMQ jobs on Redis, trained by workers anywhere.
//
//   runOnQueue(tasks, options): Promise<QueueSummary>   enqueue a sweep's or study's runs; wait or detach
//   recordOutcome(root, group, outcome)                 write a collected run into the registry
//   startWorker(options): Promise<RunningWorker>        `afterscale worker`
//   queueStatus(url) / formatQueueStatus(status)        `afterscale queue status`
//   checkRedis(url)                                     one bounded connection attempt with a clear error
export {
  CONNECT_TIMEOUT_MS,
  checkRedis,
  parseQueueUrl,
  REDIS_OUTAGE_SECONDS,
  redactUrl,
} from "./connection.js";
export {
  type CoordinatorOptions,
  type QueueSummary,
  type QueueTask,
  recordOutcome,
  runOnQueue,
} from "./coordinator.js";
export {
  DEFAULT_ATTEMPTS,
  jobIdOf,
  QUEUE_NAME,
  type RunJob,
  type RunOutcome,
  type RunProgress,
} from "./jobs.js";
export { formatQueueStatus, type QueueStatus, queueStatus } from "./status.js";
export {
  DEFAULT_LOCK_DURATION_MS,
  DEFAULT_STALLED_INTERVAL_MS,
  MAX_STALLED_COUNT,
  type RunningWorker,
  startWorker,
  type WorkerOptions,
} from "./worker.js";
