/** The API client, configured from AgentConfig. */
import { ContainerModule } from 'inversify';
import { ApiClient } from './api-client.js';
import { refusedTokenFix } from './refused-token.js';
import { AgentConfig } from '../config/config.js';
import { LOGGER, type Logger } from '../config/module.js';

export const apiClientModule = new ContainerModule(({ bind }) => {
  bind(ApiClient)
    .toDynamicValue((ctx) => {
      const { settings, token } = ctx.get(AgentConfig);
      const log = ctx.get<Logger>(LOGGER);
      return new ApiClient({
        baseUrl: settings.api.replace(/\/$/, ''),
        token,
        host: settings.host,
        backoff: { minMs: settings.backoffMinMs, maxMs: settings.backoffMaxMs },
        requestTimeoutMs: settings.requestTimeoutMs,
        // Enforcement goes on from the maps and the snapshot; this only says the API is out of reach,
        // or, when it refuses the token (one that expired while the agent ran), what to do about it.
        onError: (err, retryInMs) => {
          const fix = refusedTokenFix(err, settings.host);
          if (fix) log.error({ err: err.message, fix, retryInMs }, `the API refused this agent's token: ${fix}; enforcement unchanged, retrying`);
          else log.warn({ err: err.message, retryInMs }, 'API unreachable or watch failed; enforcement unchanged, retrying');
        },
        onConnected: (revision) => log.info({ revision }, 'watching the API'),
      });
    })
    .inSingletonScope();
});
