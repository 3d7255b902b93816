/**
 * Clean-up that runs every step, in order, even when earlier ones fail, and then reports every
 * failure at once (a test's `after` must not leave namespaces or cgroups behind because an earlier
 * step threw).
 *
 *   const { step, done } = cleanupSteps();
 *   await step(() => peers.killAll());
 *   await step(() => nets.cleanup());
 *   done('sockops cleanup');
 */
export function cleanupSteps(): { step: (f: () => unknown) => Promise<void>; done: (label: string) => void } {
  const errors: unknown[] = [];
  return {
    step: async (f) => {
      try {
        await f();
      } catch (err) {
        errors.push(err);
      }
    },
    done: (label) => {
      if (errors.length > 0) throw new AggregateError(errors, `${label}: ${errors.map(String).join('; ')}`);
    },
  };
}
