/**
 * The one error mapper at the end of the chain: every error becomes an RFC 9457
 * application/problem+json document. Only 5xx are logged; stack traces never leave the process.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { PROBLEM_CONTENT_TYPE, type Problem } from '../contract/problem.js';
import { ApiError, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType } from '../errors.js';

/** Errors thrown by body-parser carry a `type`; map the ones a client causes. */
function fromBodyParser(err: { type?: string; message?: string; limit?: number }): ApiError | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return new InvalidInput(`the request body is not valid JSON: ${err.message}`, [{ path: '', message: 'malformed JSON' }]);
    case 'entity.too.large':
      return new PayloadTooLarge(`the request body exceeds ${err.limit} bytes`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new UnsupportedMediaType(err.message ?? 'unsupported encoding');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new InvalidInput(err.message ?? 'the request body could not be read');
    default:
      return undefined;
  }
}

export function sendProblem(res: Parameters<RequestHandler>[1], problem: Problem, headers: Record<string, string> = {}): void {
  res.status(problem.status).set(headers).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}

export const notFoundHandler: RequestHandler = (req) => {
  throw new NotFound(`no route for ${req.method} ${req.path}`);
};

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    const known = err instanceof ApiError ? err : fromBodyParser(err);
    if (known) {
      sendProblem(
        res,
        {
          type: 'about:blank',
          title: known.title,
          status: known.status,
          detail: known.message,
          instance: req.originalUrl,
          ...(known.errors?.length ? { errors: known.errors } : {}),
          ...(known.conflicts?.length ? { conflicts: known.conflicts } : {}),
        },
        known.headers,
      );
      return;
    }
    logger.error({ err, method: req.method, url: req.originalUrl }, 'unhandled error');
    sendProblem(res, { type: 'about:blank', title: 'Internal server error', status: 500, instance: req.originalUrl });
  };
}
