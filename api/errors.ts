/**
 * Typed domain errors. Services throw them; the one error handler at the end of the HTTP
 * chain maps each to its status and an RFC 9457 problem document.
 */
import type { FieldError } from './contract/problem.js';

export abstract class ApiError extends Error {
  abstract readonly status: number;
  abstract readonly title: string;
  readonly errors?: FieldError[];
  readonly conflicts?: string[];
  readonly headers?: Record<string, string>;
}

export class InvalidInput extends ApiError {
  readonly status = 400;
  readonly title = 'Invalid input';
  constructor(detail: string, override readonly errors: FieldError[] = []) {
    super(detail);
  }
}
export class Unauthenticated extends ApiError {
  readonly status = 401;
  readonly title = 'Authentication required';
  override readonly headers = { 'WWW-Authenticate': 'Bearer realm="pacer"' };
}
export class Forbidden extends ApiError {
  readonly status = 403;
  readonly title = 'Forbidden';
}
export class NotFound extends ApiError {
  readonly status = 404;
  readonly title = 'Not found';
}
export class Conflict extends ApiError {
  readonly status = 409;
  readonly title = 'Conflict';
  constructor(detail: string, override readonly errors: FieldError[] = [], override readonly conflicts: string[] = []) {
    super(detail);
  }
}
export class Gone extends ApiError {
  readonly status = 410;
  readonly title = 'Gone';
}
export class PreconditionFailed extends ApiError {
  readonly status = 412;
  readonly title = 'Precondition failed';
}
export class PayloadTooLarge extends ApiError {
  readonly status = 413;
  readonly title = 'Payload too large';
}
export class UnsupportedMediaType extends ApiError {
  readonly status = 415;
  readonly title = 'Unsupported media type';
}
export class PreconditionRequired extends ApiError {
  readonly status = 428;
  readonly title = 'Precondition required';
}
/** A 4xx that Express or a library raised (err.status), kept as that status. */
export class ClientError extends ApiError {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
  ) {
    super(detail);
  }
}
export class TooManyRequests extends ApiError {
  readonly status = 429;
  readonly title = 'Too many requests';
  constructor(detail: string, override readonly headers: Record<string, string> = {}) {
    super(detail);
  }
}
export class Unavailable extends ApiError {
  readonly status = 503;
  readonly title = 'Service unavailable';
  constructor(detail: string, override readonly headers: Record<string, string> = {}) {
    super(detail);
  }
}
/** The store's disk is full: the write was not kept, and nothing of it was applied. */
export class InsufficientStorage extends ApiError {
  readonly status = 507;
  readonly title = 'Insufficient storage';
}
