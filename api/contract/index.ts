/** The contract every part of pacer speaks. Imports nothing else from the project. */
export * from './units.js';
export * from './class.js';
export * from './consistency.js';
export * from './host.js';
export * from './token.js';
export * from './change.js';
export * from './revision.js';
export * from './problem.js';
export * from './text.js';
