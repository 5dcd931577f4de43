import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ROOT, which } from './monitoring-files.js';

// The Kubernetes manifests as the cluster would receive them: rendered by kustomize (the one in
// kubectl: `kubectl apply -k` renders the same way) and checked against the API's schemas, as
// `nats-server -t` and promtool check the other shipped configs (issue 16, item 1).
//
// The schemas are those of kubernetes-models 4.5.1 (the OpenAPI of Kubernetes 1.33.0) and
// @kubernetes-models/keda 0.4.2 (KEDA 2.10.1's CRDs), compiled into each model's validate(). They
// catch wrong types, missing required fields and values outside an enum; like Kubernetes' OpenAPI
// they allow unknown fields, so a misspelt optional field passes here and is refused only by the
// API server's strict field validation.

/** One object of a rendered manifest, as far as every kind agrees. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

/** kubectl, when it is on PATH (`.ci/run` installs one whose kustomize renders deploy/k8s). */
const KUBECTL = which('kubectl');

/**
 * The objects `kubectl kustomize <dir>` renders (dir from the repository's root, or absolute), and
 * what it printed on stderr (deprecation warnings land there). Throws when kubectl is missing or the
 * kustomization does not build.
 *
 * @example
 * const { objects } = renderKustomization('deploy/k8s');
 * objects.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name); // ['cache', ...]
 */
export function renderKustomization(dir: string): { objects: KubeObject[]; stderr: string } {
  if (!KUBECTL) throw new Error('kubectl is not on PATH: .ci/run installs it (docs/deploy.md, "Checked before it ships")');
  const out = spawnSync(KUBECTL, ['kustomize', resolve(ROOT, dir)], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (out.status !== 0) throw new Error(`kubectl kustomize ${dir} failed (kustomize 5 or newer is needed):\n${out.stderr}`);
  return { objects: parseManifest(out.stdout), stderr: out.stderr };
}

/** The objects of a multi-document YAML manifest (empty documents, such as a leading `---`, left out). */
export const parseManifest = (text: string): KubeObject[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);

interface Model {
  apiVersion: string;
  kind: string;
  new (data: object): { validate(): void };
}

// The kinds deploy/k8s has, at the apiVersion it uses. Importing one kind, not its whole API group,
// keeps the load to about a second. An object of any other kind or apiVersion (a removed
// apps/v1beta1, a new CRD) is reported as having no schema: add its model here, never a skip.
const MODELS = new Map(
  (
    [
      ConfigMap,
      Namespace,
      Secret,
      Service,
      ServiceAccount,
      Deployment,
      StatefulSet,
      HorizontalPodAutoscaler,
      Job,
      NetworkPolicy,
      Role,
      RoleBinding,
      ScaledObject,
    ] as Model[]
  ).map((model) => [`${model.apiVersion} ${model.kind}`, model]),
);

/**
 * What is wrong with each object by the schema of its apiVersion and kind, keyed `Kind name`;
 * valid objects are left out, so `{}` means every object is valid. An object with no schema here
 * is wrong too: it was not checked.
 *
 * @example
 * manifestErrors([{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { replicas: 'three' } }])
 * // { 'Deployment x': ['data/spec must have required property selector, ..., data/spec/replicas must be integer'] }
 */
export function manifestErrors(objects: KubeObject[]): Record<string, string[]> {
  const errors: Record<string, string[]> = {};
  for (const object of objects) {
    const found = schemaErrors(object);
    if (found.length > 0) errors[`${object.kind} ${object.metadata.name}`] = found;
  }
  return errors;
}

function schemaErrors(object: KubeObject): string[] {
  const Model = MODELS.get(`${object.apiVersion} ${object.kind}`);
  if (!Model) return [`no schema for ${object.apiVersion} ${object.kind}`];
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}
