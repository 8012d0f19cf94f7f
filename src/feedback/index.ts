// Public surface of feedback: tuning on chat data, preferences and verifiable rewards.
export * from "./prefs.js";
export * from "./prefs-export.js";
