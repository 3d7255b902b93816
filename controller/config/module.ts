/** Binds the resolved configuration and the logger (made by the CLI: api/cli/logger.ts). */
import { ContainerModule } from 'inversify';
import type { Logger } from 'pino';
import { AgentConfig } from './config.js';

export const LOGGER = Symbol('Logger'); // pino's Logger is an interface: a Symbol is the only token it can have
export type { Logger };

export function configModule(config: AgentConfig, logger: Logger): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind(AgentConfig).toConstantValue(config);
    bind<Logger>(LOGGER).toConstantValue(logger);
  });
}
