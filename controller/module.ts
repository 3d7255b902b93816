/** The agent itself; configuration, API client and installer come from their own modules. */
import { ContainerModule } from 'inversify';
import { Agent } from './agent.js';

export const agentModule = new ContainerModule(({ bind }) => {
  bind(Agent).toSelf().inSingletonScope();
});
