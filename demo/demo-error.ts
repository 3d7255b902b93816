/** A reason the demo cannot run or went wrong, in words for the user (printed without a stack). */
export class DemoError extends Error {}
