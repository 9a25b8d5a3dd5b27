export * from './format.js';
export * from './end.js';
export * from './scan.js';
