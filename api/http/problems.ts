/**
 * The one error mapper at the end of the chain: every error becomes an RFC 9457
 * application/problem+json document. Only 5xx are logged; stack traces never leave the process.
 */
import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { PROBLEM_CONTENT_TYPE, type Problem } from '../contract/problem.js';
import { ApiError, ClientError, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType } from '../errors.js';
import { unreadable } from './json-body.js';

/** Errors thrown by body-parser carry a `type`; map the ones a client causes. */
function fromBodyParser(err: { type?: string; message?: string; limit?: number }): ApiError | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return unreadable(err);
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

/**
 * Any other error that Express or a library marks as the client's (status 400–499, as
 * http-errors does) keeps its status. Express's router marks a path parameter it cannot
 * percent-decode (`/v1/classes/%ZZ`) with a URIError of status 400.
 */
function fromClientStatus(err: { status?: unknown; statusCode?: unknown; message?: unknown; expose?: unknown }): ApiError | undefined {
  const status = err.status ?? err.statusCode;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 499) return undefined;
  const message = typeof err.message === 'string' && err.expose !== false ? err.message : undefined;
  if (err instanceof URIError) {
    return new InvalidInput(`the URL is not valid percent-encoding${message ? ` (${message})` : ''}; write a literal "%" as %25`);
  }
  const title = STATUS_CODES[status] ?? 'Client error';
  return new ClientError(status, title, message ?? title);
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
    const known = err instanceof ApiError ? err : (fromBodyParser(err) ?? fromClientStatus(err ?? {}));
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
