// Public surface of serving.
export { CHAT_STOPS, type ChatMessage, type ChatPrompt, chatPrompt, renderChat } from "./chat-template.js";
export { Engine, type EngineOptions, type EngineStats } from "./engine.js";
export { ApiError } from "./errors.js";
export {
  DEFAULT_PREFILL_CHUNK,
  type FinishReason,
  type SequenceEvent,
  type SequenceRequest,
} from "./protocol.js";
export type { ServedModel } from "./routes.js";
export { Scheduler, type SchedulerOptions } from "./scheduler.js";
export {
  closeOnSignals,
  type ModelToServe,
  type RunningServer,
  type ServeOptions,
  startServer,
} from "./server.js";
