export * from './format.js';
export * from './end.js';
