export * from "./losses.js";
