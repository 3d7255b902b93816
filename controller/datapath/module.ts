/** The kernel installer; tests bind MemoryInstaller to INTERFACE_INSTALLER instead. */
import { ContainerModule } from 'inversify';
import { AgentConfig } from '../config/config.js';
import { INTERFACE_INSTALLER, KernelInstaller, type InterfaceInstaller } from './installer.js';

export const kernelDatapathModule = new ContainerModule(({ bind }) => {
  bind<InterfaceInstaller>(INTERFACE_INSTALLER)
    .toDynamicValue((ctx) => {
      const { stateDir, netns, pinBase } = ctx.get(AgentConfig).settings;
      return new KernelInstaller({ stateDir, netns, pinBase });
    })
    .inSingletonScope();
});
