import { defineConfig } from 'vitest/config';

// Tiers, told apart by file name: *.unit.spec.ts (pure, no I/O), *.int.spec.ts (one package
// against real NATS/Postgres), test/**/*.e2e.spec.ts (the whole stack as processes),
// test/**/*.load.spec.ts (the whole stack under sustained load: `npm run load`) and
// test/**/*.chaos.spec.ts (the whole stack for two minutes while processes are killed: `npm run
// chaos`), test/**/*.fuzz.spec.ts (ten thousand and more generated requests at both front
// doors: `npm run fuzz`, docs/fuzzing.md) and test/**/*.cluster-chaos.spec.ts (a three-node NATS
// cluster under kills: `npm run chaos:cluster`, docs/cluster.md, not in CI). `npm test` runs unit,
// int and e2e (under 15 minutes on 2 cores); CI (.ci/run) runs load, chaos and fuzz after it. Groups run one after another, so a
// stack of processes never shares the two cores with another.
//
// Tests import the workspace packages' TypeScript sources, not their build: the `sluice-src`
// export condition (see tsconfig.base.json), then what Vitest uses when none are set (Vite's server
// defaults without `module`, whose builds Node's own loader cannot always import). Vitest also
// passes these to its worker processes as --conditions.
const conditions = ['sluice-src', 'node', 'development|production'];

// Vitest's default is one worker fewer than the cores: one on this 2-core machine, so the unit and
// int files ran one at a time while most int files wait on NATS and Postgres. Three at once took
// their phase from 311 s to 155 s here (every file on its own streams, buckets and databases).
// The e2e and later projects keep one file at a time: each runs a whole stack of processes.
const UNIT_INT_WORKERS = 3;

export default defineConfig({
  ssr: { resolve: { conditions } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['libs/*/src/**/*.unit.spec.ts', 'services/*/src/**/*.unit.spec.ts', 'scripts/**/*.unit.spec.ts'],
          maxWorkers: UNIT_INT_WORKERS,
        },
      },
      {
        extends: true,
        test: {
          name: 'int',
          include: ['libs/*/src/**/*.int.spec.ts', 'services/*/src/**/*.int.spec.ts', 'scripts/**/*.int.spec.ts'],
          // the specs on a three-node NATS cluster are the `cluster` project below
          exclude: ['**/node_modules/**', '**/*-cluster.int.spec.ts'],
          maxWorkers: UNIT_INT_WORKERS,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          // int specs on a three-node loopback NATS cluster (*-cluster.int.spec.ts: compare-and-set
          // races, a durable's leader killed, Idempotency-Key with nodes down): three nats-servers
          // each, about two minutes in all, so out of `npm test`: `npm run test:cluster`, run by CI
          name: 'cluster',
          include: ['libs/*/src/**/*-cluster.int.spec.ts', 'services/*/src/**/*-cluster.int.spec.ts'],
          sequence: { groupOrder: 6 },
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.e2e.spec.ts'],
          sequence: { groupOrder: 1 },
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // each e2e file runs a whole stack of processes; two at once would starve two cores
          fileParallelism: false,
          // on Sluice's NATS users and rights, as npm start runs (docs/nats-security.md); a file
          // whose stack met a Publish or Subscription Violation fails. SLUICE_E2E_NATS_AUTH=0: without users
          env: { SLUICE_E2E_NATS_AUTH: process.env.SLUICE_E2E_NATS_AUTH ?? '1' },
        },
      },
      {
        extends: true,
        test: {
          // sustained load for tens of seconds (the adaptive limit at 3x the upstream's rate): `npm run load`, run by CI after `npm test`
          name: 'load',
          include: ['test/**/*.load.spec.ts'],
          sequence: { groupOrder: 2 },
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'chaos',
          include: ['test/**/*.chaos.spec.ts'],
          sequence: { groupOrder: 3 },
          testTimeout: 400_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          // the stack on a three-node NATS cluster while nodes and replicas are killed (docs/cluster.md): `npm run chaos:cluster`
          name: 'cluster-chaos',
          include: ['test/**/*.cluster-chaos.spec.ts'],
          sequence: { groupOrder: 5 },
          testTimeout: 900_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          // generated requests at both front doors on the whole stack (docs/fuzzing.md): `npm run fuzz`
          name: 'fuzz',
          include: ['test/**/*.fuzz.spec.ts'],
          sequence: { groupOrder: 4 },
          testTimeout: 600_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
