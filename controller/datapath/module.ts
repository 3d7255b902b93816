/** The kernel installer; tests bind MemoryInstaller to INTERFACE_INSTALLER instead. */
import { ContainerModule } from 'inversify';
import { checkKernelFeatures, KERNEL_PROBE, type KernelProbe } from '../../shaper-bpf/src/kernel-features.js';
import { AgentConfig } from '../config/config.js';
import { LOGGER, type Logger } from '../config/module.js';
import { INTERFACE_INSTALLER, KernelInstaller, type InterfaceInstaller } from './installer.js';
import { KernelTcpTuner, TCP_TUNER, type TcpTuner } from './tcp-tuner.js';
import { KernelRouteTuner, ROUTE_TUNER, type RouteTuner } from './route-tuner.js';

export const kernelDatapathModule = new ContainerModule(({ bind }) => {
  // What this kernel lacks, probed once at agent start (a missing tc feature stops the agent).
  bind<KernelProbe>(KERNEL_PROBE).toConstantValue(() => checkKernelFeatures());
  bind<InterfaceInstaller>(INTERFACE_INSTALLER)
    .toDynamicValue((ctx) => {
      const { stateDir, netns, pinBase } = ctx.get(AgentConfig).settings;
      return new KernelInstaller({ stateDir, netns, pinBase, log: ctx.get<Logger>(LOGGER) });
    })
    .inSingletonScope();
  // sock_ops at --cgroup-root, by default at the cgroup v2 hierarchy's root; nothing with `--cgroup-root off`.
  bind<TcpTuner>(TCP_TUNER)
    .toDynamicValue((ctx) => {
      const { cgroupRoot, pinBase, stateDir } = ctx.get(AgentConfig).settings;
      return new KernelTcpTuner({ cgroupRoot, pinBase, stateDir });
    })
    .inSingletonScope();
  // rto_min routes in the interfaces' network namespace (used only with --route-tuning on, the default).
  bind<RouteTuner>(ROUTE_TUNER)
    .toDynamicValue((ctx) => new KernelRouteTuner({ netns: ctx.get(AgentConfig).settings.netns }))
    .inSingletonScope();
});
