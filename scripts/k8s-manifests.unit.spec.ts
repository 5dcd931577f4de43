import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { manifestErrors, parseManifest, renderKustomization } from './k8s-manifests.js';
import { readRepoFile as read, ROOT } from './monitoring-files.js';
import { OPERATOR_USER, passwordVar } from './nats-auth.js';
import { ALL_SERVICES } from './stack.js';

// Issue 16, item 1: the Kubernetes manifests are checked as nats-server -t checks the NATS
// configs. kubectl's kustomize renders deploy/k8s (as `kubectl apply -k` does) and every object
// it renders must be valid by the schema of its apiVersion and kind (scripts/k8s-manifests.ts
// says which schemas, and what they do not catch).

const { objects, stderr } = renderKustomization('deploy/k8s');

describe('deploy/k8s, as kubectl apply -k sends it', () => {
  it('renders with kubectl kustomize, with no warnings, an object from every resource it lists', () => {
    expect(stderr).toBe('');
    const kinds = new Set(objects.map((o) => `${o.apiVersion} ${o.kind}`));
    expect([...kinds].sort()).toEqual([
      'apps/v1 Deployment',
      'apps/v1 StatefulSet',
      'autoscaling/v2 HorizontalPodAutoscaler',
      'batch/v1 Job',
      'keda.sh/v1alpha1 ScaledObject',
      'networking.k8s.io/v1 NetworkPolicy',
      'rbac.authorization.k8s.io/v1 Role',
      'rbac.authorization.k8s.io/v1 RoleBinding',
      'v1 ConfigMap',
      'v1 Namespace',
      'v1 Service',
      'v1 ServiceAccount',
    ]);
    const names = (kind: string) => objects.filter((o) => o.kind === kind).map((o) => o.metadata.name);
    expect(names('Deployment').sort()).toEqual(['cache', 'degrader', 'grafana', 'ingress', 'invoker', 'ledger', 'limiter', 'prometheus', 'router']);
    expect(names('ScaledObject').sort()).toEqual(['cache', 'invoker', 'ledger', 'limiter', 'router']);
  });

  it('every object is valid by the schema of its apiVersion and kind (Kubernetes 1.33; KEDA 2.10 for ScaledObject)', () => {
    expect(objects.length).toBeGreaterThan(30);
    expect(manifestErrors(objects)).toEqual({});
  });

  it('so are the Secrets of secret.yaml, the one manifest the kustomization leaves out (they are created by hand)', () => {
    const kustomization = parse(read('deploy/k8s/kustomization.yaml')) as { resources: string[]; patches: Array<{ path: string }> };
    const rendered = new Set([...kustomization.resources, ...kustomization.patches.map((p) => p.path), 'kustomization.yaml']);
    expect(readdirSync(join(ROOT, 'deploy/k8s')).filter((f) => !rendered.has(f))).toEqual(['secret.yaml']);
    const secrets = parseManifest(read('deploy/k8s/secret.yaml'));
    expect(secrets.map((s) => `${s.kind} ${s.metadata.name}`)).toEqual(['Secret sluice-secrets', 'Secret sluice-nats-users']);
    expect(manifestErrors(secrets)).toEqual({});
  });
});

describe("deploy/k8s and deploy/nats/users.conf agree on NATS's users", () => {
  type Env = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };
  type Pod = { spec: { template: { spec: { containers: Array<{ env?: Env[] }> } } } };
  const users = read('deploy/nats/users.conf');

  it('the NATS pods get users.conf beside nats.conf, and the sluice-nats-users Secret has a password for each of its users', () => {
    const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'nats-config') as unknown as { data: Record<string, string> };
    expect(config.data['users.conf']).toBe(users);
    expect(config.data['nats.conf']).toMatch(/^include users\.conf$/m);
    const vars = [...users.matchAll(/password: \$([A-Z0-9_]+)/g)].map((m) => m[1]!);
    const secret = parseManifest(read('deploy/k8s/secret.yaml')).find((o) => o.metadata.name === 'sluice-nats-users') as unknown as {
      stringData: Record<string, string>;
    };
    expect(Object.keys(secret.stringData).sort()).toEqual([...vars].sort());
  });

  it("each Sluice pod connects as its own service's user (the config loader as the operator), with that user's password", () => {
    const connected: string[] = [];
    for (const o of objects.filter((o) => o.kind === 'Deployment' || o.kind === 'Job')) {
      for (const c of (o as unknown as Pod).spec.template.spec.containers) {
        const user = c.env?.find((e) => e.name === 'NATS_USER')?.value;
        if (!user) continue;
        expect(users).toContain(`{ user: "${user}", password: $${passwordVar(user)}`);
        expect(c.env!.find((e) => e.name === 'NATS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({ name: 'sluice-nats-users', key: passwordVar(user) });
        connected.push(`${o.metadata.name}:${user}`);
      }
    }
    expect(connected.sort()).toEqual([...ALL_SERVICES.map((s) => `${s}:${s}`), `sluice-config:${OPERATOR_USER}`].sort());
  });
});

describe('the check fails on a broken manifest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-k8s-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a Deployment with replicas: "three", rendered by kustomize like deploy/k8s, is refused with the field named', () => {
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: sluice\nresources: [deployment.yaml]\n',
    );
    writeFileSync(
      join(dir, 'deployment.yaml'),
      [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: { name: broken }',
        'spec:',
        '  replicas: "three"',
        '  selector: { matchLabels: { app: broken } }',
        '  template:',
        '    metadata: { labels: { app: broken } }',
        '    spec: { containers: [{ name: broken, image: sluice }] }',
      ].join('\n'),
    );
    const broken = renderKustomization(dir).objects;
    expect(broken.map((o) => o.metadata)).toEqual([{ name: 'broken', namespace: 'sluice' }]);
    expect(manifestErrors(broken)).toEqual({ 'Deployment broken': ['data/spec/replicas must be integer'] });
  });

  it('so is a shipped object with a wrong type, a value outside its enum or a required field missing, and a kind or apiVersion with no schema', () => {
    const one = (kind: string, name: string) => structuredClone(objects.find((o) => o.kind === kind && o.metadata.name === name)!) as any;
    const ingress = one('Deployment', 'ingress');
    ingress.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes';
    const nats = one('Service', 'nats');
    delete nats.spec.ports[0].port;
    const limiter = one('ScaledObject', 'limiter');
    limiter.spec.minReplicaCount = 'two';
    const removed = { ...one('StatefulSet', 'nats'), apiVersion: 'apps/v1beta2' }; // gone since Kubernetes 1.16
    const widget = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } };
    expect(manifestErrors([ingress, nats, limiter, removed, widget])).toEqual({
      'Deployment ingress': ['data/spec/template/spec/containers/0/imagePullPolicy must be equal to one of the allowed values'],
      'Service nats': ['data/spec/ports/0 must have required property port'],
      'ScaledObject limiter': ['data/spec/minReplicaCount must be integer'],
      'StatefulSet nats': ['no schema for apps/v1beta2 StatefulSet'],
      'Widget w': ['no schema for example.com/v1 Widget'],
    });
  });
});
