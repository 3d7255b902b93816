/**
 * What `pacer sim init` writes: a small scenario that runs as it is, with every section a planner
 * edits commented (the options not used are shown commented out). A test runs it.
 */
export const SCENARIO_TEMPLATE = `# yaml-language-server: $schema=SCHEMA_PATH
# A pacer sim scenario: run it with \`pacer sim run FILE\`; see docs/simulator.md for every field.
# Quantities are tc's: rates in bit/s ("1gbit"; "mbps" would be megaBYTES/s), sizes binary
# ("32kb" = 32,768 bytes; a bare number is bytes), durations need a unit ("25us", "200ms", "2s").
description: two classes sharing one host's egress (edit me)
seed: 1                        # same scenario + seed = the same result, byte for byte
duration: 1s                   # simulated time; ends earlier when every finite workload is done
# bin: 100ms                   # width of the time-series bins in the report

topology:
  switch:                      # one switch; every host has its own port on it
    buffer: 256kb              # per-port drop-tail buffer (or bufferPackets: 100)
    # ecnThreshold: 64kb       # CE-mark above this queue
    # sharedBuffer: 1mb        # one pool for all ports (alpha: 1 = dynamic threshold)
  hosts:
    app:
      address: 10.0.0.1
      labels: { role: app }    # classes pick hosts by label (hosts.matchLabels)
      link: { rate: 1gbit, delay: 25us }
    db:
      count: 2                 # db1, db2 at 10.0.2.1, 10.0.2.2
      address: 10.0.2.1
      link: { rate: 1gbit, delay: 25us }

# The API's class spec (\`pacer class get NAME --json\` pastes as it is). A budget is per host.
# \`pacer sim run FILE --classes-from-api URL\` replaces this list with the classes in force.
classes:
  - name: gold
    rate: 600mbit
    burst: 64kb
    match: { marks: [1] }
    hosts: { matchLabels: { role: app } }
  - name: silver
    rate: 300mbit
    match: { marks: [2] }
    hosts: { matchLabels: { role: app } }

tcp:                           # defaults for every flow
  variant: cubic               # or newreno
  rtoMin: 5ms
  # sack: true
  # delayedAck: true           # or a delack_max such as 1ms
  # pacing: true

workloads:                     # each one of bulk, incast, rpc, onoff
  - bulk: { from: app, to: db1, mark: 1 }              # long-lived (no bytes)
  - bulk: { from: app, to: db2, mark: 2, flows: 2 }
  # - bulk: { from: app, to: db1, bytes: 1mb, start: 100ms, jitter: 10us }
  # - incast: { client: app, servers: [db], blockBytes: 1mb, rounds: 10 }
  # - rpc: { clients: [app], servers: [db], sizes: web-search, load: 40%, mark: 1 }
  # - onoff: { from: app, to: db1, rate: 100mbit, on: 10ms, off: 40ms, mark: 2 }
`;

/** The template with its schema hint pointing at `schemaPath` (relative to the written file, or a URL). */
export function scenarioTemplate(schemaPath: string): string {
  return SCENARIO_TEMPLATE.replace('SCHEMA_PATH', schemaPath);
}
