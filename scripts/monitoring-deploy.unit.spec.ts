import { existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { renderKustomization } from './k8s-manifests.js';
import { DASHBOARD_DIR, dashboardFiles, readRepoFile as read, relabel, ROOT, ruleFiles, RULES_DIR, scrapePorts, type RelabelRule } from './monitoring-files.js';

// Issue 15, item 3: Prometheus and Grafana wired into docker-compose.yml and deploy/k8s: each
// service scraped at the port docs/metrics.md gives it (and set there), every mounted file there,
// the ConfigMaps generated from the same files (no copies) and mounted where the configs point.
// kubectl renders the kustomization (scripts/k8s-manifests.ts; .ci/run installs it when missing).

const metricsMd = read('docs/metrics.md');

describe('scrape targets and ports agree with docs/metrics.md', () => {
  const ports = scrapePorts(metricsMd);
  const compose = parse(read('docker-compose.yml')) as {
    services: Record<string, { environment?: Record<string, string>; volumes?: string[]; command?: string[]; image?: string }>;
    volumes: Record<string, unknown>;
  };
  const env = (service: string, name: string) => compose.services[service]?.environment?.[name];

  it('compose: Prometheus scrapes each service at its port, and the service listens there', () => {
    // every replica's address from Docker's DNS, at the service's port
    const config = parse(read('deploy/prometheus/prometheus.yml')) as {
      scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ names: string[]; type: string; port: number }> }>;
    };
    const targets = new Map(
      config.scrape_configs.map((s) => [s.job_name, (s.dns_sd_configs ?? []).flatMap((c) => c.names.map((n) => `${c.type} ${n}:${c.port}`))]),
    );
    for (const { service, port, env: variable } of ports) {
      expect(targets.get(`sluice-${service}`), service).toEqual([`A ${service}:${port}`]);
      expect(env(service, variable), `${service} ${variable}`).toBe(String(port));
    }
  });

  it('kubernetes: Prometheus finds each service by label and scrapes it at its port, and the pod sets it', () => {
    const config = parse(read('deploy/prometheus/prometheus-k8s.yml')) as { scrape_configs: Array<{ job_name: string; relabel_configs?: RelabelRule[] }> };
    const relabels = config.scrape_configs.find((s) => s.job_name === 'sluice')!.relabel_configs!;
    // the pods discovery finds (one target per declared port, or one per pod without), as relabelling leaves them
    const pod = (name: string, partOf: string, i: number, phase = 'Running', port = '') => ({
      __address__: `10.0.0.${i}${port}`,
      __meta_kubernetes_pod_name: `${name}-${i}`,
      __meta_kubernetes_pod_ip: `10.0.0.${i}`,
      __meta_kubernetes_pod_phase: phase,
      __meta_kubernetes_pod_label_app_kubernetes_io_name: name,
      __meta_kubernetes_pod_label_app_kubernetes_io_part_of: partOf,
    });
    const discovered = [
      ...ports.map((p, i) => pod(p.service, 'sluice', i + 1, 'Running', ':1234')),
      pod('router', 'sluice', 20, 'Pending'),
      pod('nats', 'sluice', 21, 'Running', ':4222'),
      pod('sluice-config', 'sluice', 22, 'Succeeded'),
      pod('prometheus', 'sluice-monitoring', 23, 'Running', ':9090'),
    ];
    const scraped = discovered
      .flatMap((d) => {
        const t = relabel(d, relabels);
        return t ? [t] : [];
      })
      .map((t) => ({ job: t.job, instance: t.instance, address: t.__address__ }));
    expect(scraped).toEqual(ports.map((p, i) => ({ job: `sluice-${p.service}`, instance: `${p.service}-${i + 1}`, address: `10.0.0.${i + 1}:${p.port}` })));
    const patches = parseAllDocuments(read('deploy/k8s/metrics-ports.yaml')).map((d) => d.toJS() as Deployment);
    const sluiceEnv = (
      parseAllDocuments(read('deploy/k8s/config.yaml')).map((d) => d.toJS()) as Array<{ metadata: { name: string }; data: Record<string, string> }>
    ).find((d) => d.metadata.name === 'sluice-env')!.data;
    for (const { service, port, env: variable } of ports) {
      const patched = patches.find((p) => p.metadata.name === service)?.spec.template.spec.containers[0]?.env?.find((e) => e.name === variable)?.value;
      expect(patched ?? sluiceEnv[variable], `${service} ${variable}`).toBe(String(port));
    }
  });
});

interface Deployment {
  kind: string;
  metadata: { name: string };
  spec: {
    template: {
      spec: {
        containers: Array<{
          name: string;
          env?: Array<{ name: string; value?: string }>;
          args?: string[];
          volumeMounts?: Array<{ name: string; mountPath: string }>;
        }>;
        volumes?: Array<{ name: string; configMap?: { name: string } }>;
      };
    };
  };
}

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml')) as {
    services: Record<string, { volumes?: string[]; command?: string[]; image?: string; depends_on?: unknown }>;
    volumes: Record<string, unknown>;
  };

  it('mounts files that exist, and named volumes it declares', () => {
    for (const [name, service] of Object.entries(compose.services))
      for (const volume of service.volumes ?? []) {
        const [source] = volume.split(':');
        if (source!.startsWith('./')) expect(existsSync(join(ROOT, source!)), `${name}: ${volume}`).toBe(true);
        else expect(compose.volumes, `${name}: ${volume}`).toHaveProperty(source!);
      }
  });

  it('gives Prometheus its config and rules, and Grafana its data source, dashboard provider and dashboards where they point', () => {
    const mounts = (service: string) => new Map(compose.services[service]!.volumes!.map((v) => [v.split(':')[1]!, v.split(':')[0]!]));
    const prometheus = mounts('prometheus');
    const configFile = compose.services.prometheus!.command!.find((a) => a.startsWith('--config.file='))!.split('=')[1]!;
    expect(prometheus.get(configFile)).toBe('./deploy/prometheus/prometheus.yml');
    // rule_files are relative to the config file
    const ruleGlobs = (parse(read('deploy/prometheus/prometheus.yml')) as { rule_files: string[] }).rule_files;
    expect(ruleGlobs).toEqual(['rules/*.yml']);
    expect(prometheus.get(posix.join(posix.dirname(configFile), 'rules'))).toBe('./deploy/prometheus/rules');

    const grafana = mounts('grafana');
    expect(grafana.get('/etc/grafana/provisioning/datasources')).toBe('./deploy/grafana/provisioning/datasources');
    expect(grafana.get('/etc/grafana/provisioning/dashboards')).toBe('./deploy/grafana/provisioning/dashboards');
    const provider = parse(read('deploy/grafana/provisioning/dashboards/sluice.yaml')) as { providers: Array<{ options: { path: string } }> };
    expect(grafana.get(provider.providers[0]!.options.path)).toBe('./deploy/grafana/dashboards');
    const datasource = parse(read('deploy/grafana/provisioning/datasources/prometheus.yaml')) as { datasources: Array<{ uid: string; url: string }> };
    expect(datasource.datasources[0]).toMatchObject({ uid: 'prometheus', url: 'http://prometheus:9090' });
    expect(compose.services.prometheus!.image).toMatch(/^prom\/prometheus:v\d/);
    expect(compose.services.grafana!.image).toMatch(/^grafana\/grafana:\d/);
  });
});

describe('deploy/k8s', () => {
  const generators = (dir: string) =>
    (parse(read(`${dir}/kustomization.yaml`)) as { configMapGenerator: Array<{ name: string; files: string[] }> }).configMapGenerator.map((g) => ({
      name: g.name,
      files: g.files.map((f) => {
        const [key, path] = f.includes('=') ? f.split('=') : [posix.basename(f), f];
        return { key: key!, path: `${dir}/${path}` };
      }),
    }));
  const generated = [...generators('deploy/grafana'), ...generators('deploy/prometheus')];

  it('generates its ConfigMaps from the files compose mounts: every dashboard and rule file, no copies', () => {
    const listed = generated.flatMap((g) => g.files.map((f) => f.path));
    for (const path of listed) expect(existsSync(join(ROOT, path)), path).toBe(true);
    for (const f of dashboardFiles()) expect(listed).toContain(`${DASHBOARD_DIR}/${f}`);
    for (const f of ruleFiles()) expect(listed).toContain(`${RULES_DIR}/${f}`);
    const kustomization = parse(read('deploy/k8s/kustomization.yaml')) as { resources: string[]; patches: Array<{ path: string }> };
    for (const r of kustomization.resources) expect(existsSync(join(ROOT, 'deploy/k8s', r)), r).toBe(true);
    expect(kustomization.resources).toEqual(expect.arrayContaining(['../prometheus', 'prometheus.yaml', '../grafana', 'grafana.yaml']));
    for (const p of kustomization.patches) expect(existsSync(join(ROOT, 'deploy/k8s', p.path)), p.path).toBe(true);
  });

  it('renders with kubectl kustomize: ConfigMaps hold the files as they are, and the pods mount them where the configs point', () => {
    const objects = renderKustomization('deploy/k8s').objects as Array<{
      kind: string;
      metadata: { name: string; namespace?: string };
      data?: Record<string, string>;
    }>;
    for (const o of objects) expect(o.metadata.namespace ?? 'sluice', `${o.kind} ${o.metadata.name}`).toBe('sluice');
    const configMaps = objects.filter((o) => o.kind === 'ConfigMap');
    for (const g of generated) {
      const cm = configMaps.find((c) => c.metadata.name.startsWith(`${g.name}-`));
      expect(cm, g.name).toBeDefined();
      for (const f of g.files) expect(cm!.data![f.key], `${g.name}/${f.key}`).toBe(read(f.path));
    }
    const deployments = objects.filter((o) => o.kind === 'Deployment') as unknown as Deployment[];
    const mountOf = (deployment: string, configMap: string) => {
      const spec = deployments.find((d) => d.metadata.name === deployment)!.spec.template.spec;
      const volume = spec.volumes!.find((v) => v.configMap?.name.startsWith(`${configMap}-`));
      expect(volume, `${deployment} mounts ${configMap}`).toBeDefined();
      expect(configMaps.map((c) => c.metadata.name)).toContain(volume!.configMap!.name);
      return spec.containers[0]!.volumeMounts!.find((m) => m.name === volume!.name)!.mountPath;
    };
    const args = deployments.find((d) => d.metadata.name === 'prometheus')!.spec.template.spec.containers[0]!.args!;
    expect(args).toContain(`--config.file=${mountOf('prometheus', 'prometheus-config')}/prometheus.yml`);
    const k8sRules = (parse(read('deploy/prometheus/prometheus-k8s.yml')) as { rule_files: string[] }).rule_files;
    expect(k8sRules).toEqual([`${mountOf('prometheus', 'prometheus-rules')}/*.yml`]);
    const provider = parse(read('deploy/grafana/provisioning/dashboards/sluice.yaml')) as { providers: Array<{ options: { path: string } }> };
    expect(mountOf('grafana', 'grafana-dashboards')).toBe(provider.providers[0]!.options.path);
    expect(mountOf('grafana', 'grafana-datasources')).toBe('/etc/grafana/provisioning/datasources');
    expect(mountOf('grafana', 'grafana-dashboard-providers')).toBe('/etc/grafana/provisioning/dashboards');
    expect(objects.find((o) => o.kind === 'Service' && o.metadata.name === 'prometheus')).toMatchObject({ spec: { ports: [{ port: 9090 }] } });
  });
});
