import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KEY_CHECKERS, ServiceName, Subjects, Topology } from '@sluice/contracts';
import {
  appPermissions,
  appUser,
  deployUsersConfig,
  natsAuthConfig,
  natsPasswords,
  natsUserNames,
  natsUsers,
  OPERATOR_USER,
  passwordVar,
  servicePermissions,
} from './nats-auth.js';
import { ROOT, tenantIds } from './stack.js';

// What each user may do is proven against a real server in nats-auth.int.spec.ts; these check the
// generator's shape and the lists' obvious boundaries.
const evt = (type: string) => `sluice.evt.${type}.>`;

describe('servicePermissions', () => {
  it('lets ingress publish the events it emits and not those of later stages', () => {
    const pub = servicePermissions('ingress').publish.allow;
    expect(pub).toContain(evt('chat.requested'));
    expect(pub).toContain(evt('chat.rejected'));
    expect(pub).not.toContain(evt('chat.completed'));
    expect(pub).not.toContain(evt('chat.admitted'));
  });

  it('gives no service a wildcard over all events, all KV buckets or the whole JetStream API', () => {
    for (const name of ['ingress', 'limiter', 'cache', 'router', 'invoker', 'ledger', 'degrader'] as const) {
      const { publish, subscribe } = servicePermissions(name);
      for (const broad of ['>', 'sluice.>', 'sluice.evt.>', '$JS.API.>', '$KV.>', '$JS.API.STREAM.>', '$JS.API.CONSUMER.>']) {
        expect(publish.allow, `${name} publish`).not.toContain(broad);
        expect(subscribe.allow, `${name} subscribe`).not.toContain(broad);
      }
      expect(
        publish.allow.some((s) => s.startsWith('$JS.API.STREAM.CREATE') || s.startsWith('$JS.API.STREAM.DELETE')),
        name,
      ).toBe(false);
    }
  });

  it("lets only ingress and the ledger (which writes them) read the virtual keys bucket (every service may see its stream's info)", () => {
    const keys = `KV_${Topology.buckets.keys.name}`;
    const near = (['ingress', 'limiter', 'cache', 'router', 'invoker', 'ledger', 'degrader'] as const).filter((n) =>
      servicePermissions(n).publish.allow.some((s) => (s.includes(keys) && !s.includes('.STREAM.INFO.')) || s.includes(`$KV.${Topology.buckets.keys.name}.`)),
    );
    expect(near).toEqual(['ingress', 'ledger']);
  });

  it("lets only the key checkers (ingress, the ledger) read the config's key hashes, and no service write them", () => {
    const stream = `KV_${Topology.buckets.tenantKeys.name}`;
    const kv = `$KV.${Topology.buckets.tenantKeys.name}.`;
    const names = Object.values(ServiceName);
    const near = names.filter((n) => servicePermissions(n).publish.allow.some((s) => s.includes(stream) && !s.includes('.STREAM.INFO.')));
    expect(near).toEqual([...KEY_CHECKERS]);
    expect(names.filter((n) => servicePermissions(n).publish.allow.some((s) => s.startsWith(kv) || s === '$KV.>'))).toEqual([]);
  });
});

describe('appPermissions', () => {
  it("requests on its tenant's subject only and listens on its own inbox prefix and alerts", () => {
    expect(appPermissions('acme')).toEqual({
      publish: { allow: [Subjects.chat('acme'), 'sluice.cancel.*', '$JS.API.DIRECT.GET.SLUICE_RESULTS.sluice.results.*'] },
      subscribe: { allow: ['sluice.inbox.acme.>', Subjects.alerts('acme')] },
    });
  });
});

describe('natsAuthConfig', () => {
  it('writes one user per service and tenant, the operator without limits, and no monitoring port', () => {
    const passwords = Object.fromEntries(natsUserNames(['acme', 'beta']).map((u) => [u, `pw-${u}`]));
    const conf = natsAuthConfig({ storeDir: '/tmp/x', users: natsUsers(['acme', 'beta'], passwords) });
    expect(conf).toContain(`max_payload: ${Topology.maxPayloadBytes}`);
    expect(conf).toContain('{ user: "operator", password: "pw-operator" }');
    expect(conf).toContain(`{ user: "${appUser('beta')}", password: "pw-app-beta", permissions: { publish: { allow: ["sluice.chat.beta"`);
    expect(conf.match(/\{ user: /g)).toHaveLength(1 + 7 + 2);
    expect(conf).not.toMatch(/http|monitor/);
  });

  it('refuses a user without a password', () => {
    expect(() => natsUsers(['acme'], { [OPERATOR_USER]: 'x' })).toThrow(/no NATS password for user ingress/);
  });
});

describe('deployUsersConfig (deploy/nats/users.conf)', () => {
  it("is the shipped users.conf for config/sluice.json's tenants: the cluster runs the rights npm start runs", () => {
    const tenants = tenantIds(JSON.parse(readFileSync(join(ROOT, 'config', 'sluice.json'), 'utf8')));
    expect(tenants).toContain('dev');
    // `npm run nats:users` writes it; edited by hand or left behind a change of rights, it differs
    expect(readFileSync(join(ROOT, 'deploy', 'nats', 'users.conf'), 'utf8')).toBe(deployUsersConfig(tenants));
  });

  it('reads every password from the environment and writes none, with the same rights as natsAuthConfig', () => {
    const conf = deployUsersConfig(['acme']);
    expect(conf).toContain('{ user: "operator", password: $OPERATOR_PASS }');
    expect(conf).toContain('{ user: "app-acme", password: $APP_ACME_PASS, permissions: { publish: { allow: ["sluice.chat.acme"');
    expect(conf.match(/password: \$[A-Z_]+_PASS[ ,]/g)).toHaveLength(1 + 7 + 1);
    const passwords = Object.fromEntries(natsUserNames(['acme']).map((u) => [u, passwordVar(u)]));
    const users = natsAuthConfig({ storeDir: '/x', users: natsUsers(['acme'], passwords) })
      .split('\n')
      .filter((l) => l.startsWith('    { user: '));
    expect(conf.split('\n').filter((l) => l.startsWith('    { user: '))).toEqual(users.map((l) => l.replace(/password: "([A-Z_]+)"/, 'password: $$$1')));
  });

  it('names each variable after its user, and refuses two users on one variable', () => {
    expect(passwordVar('ingress')).toBe('INGRESS_PASS');
    expect(passwordVar(appUser('acme-eu.1'))).toBe('APP_ACME_EU_1_PASS');
    expect(() => deployUsersConfig(['a-b', 'a_b'])).toThrow(/APP_A_B_PASS/);
  });
});

describe('natsPasswords', () => {
  it('makes a long random password per user in a 0600 file and reads it back next time', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sluice-nats-auth-')), 'creds');
    try {
      const first = natsPasswords(dir, ['ingress', 'app-acme']);
      expect(first.ingress).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(first.ingress).not.toBe(first['app-acme']);
      expect(statSync(join(dir, 'ingress')).mode & 0o777).toBe(0o600);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(readFileSync(join(dir, 'ingress'), 'utf8').trim()).toBe(first.ingress);
      expect(natsPasswords(dir, ['ingress', 'app-acme'])).toEqual(first);
    } finally {
      rmSync(dirname(dir), { recursive: true, force: true });
    }
  });
});
