// Public surface of human-feedback tuning: tasks, datasets, losses, objectives and preference storage.
export {
  DEFAULT_TASK_EVAL_BATCH,
  DEFAULT_TASK_EVAL_COUNT,
  type EvaluateTaskOptions,
  type EvaluateTaskResult,
  evaluateTask,
  type TaskCompletion,
  wilsonInterval,
} from "./task-eval.js";
export {
  type DifficultyRange,
  getTask,
  preferenceRecord,
  problemSplit,
  scoreExact,
  sftRecord,
  TASK_SPLITS,
  TASKS,
  type Task,
  type TaskExample,
  type TaskExamplesOptions,
  type TaskSplit,
  TEST_FRACTION,
  taskExamples,
  wrongAnswer,
} from "./tasks.js";
