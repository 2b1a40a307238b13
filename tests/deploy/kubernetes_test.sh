#!/bin/bash
# The Kubernetes layout in deploy/kubernetes/ renders with `kubectl kustomize` (base, the
# DaemonSet variant and the example overlay), and every rendered object validates offline against
# the Kubernetes schemas (kubernetes-models from npm, installed into a temporary directory) with
# no unknown field; names refer to rendered objects (priority class, service, probe ports) and the
# parts the deployment relies on are there. No cluster is needed (none is packaged for Debian).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sc_init
src=$SC_SOURCE/deploy/kubernetes

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sc_log "installing nodejs and npm"
  sc_apt_install nodejs npm || sc_skip "node and npm cannot be installed here"
fi
npmdir=$SC_TMP/npm
mkdir -p "$npmdir"
(cd "$npmdir" && npm init -y >/dev/null && timeout 300 npm install --no-audit --no-fund --loglevel=error \
  kubernetes-models@4 yaml@2 >"$SC_TMP/npm.log" 2>&1) ||
  sc_skip "npm cannot install kubernetes-models and yaml here ($(tail -n1 "$SC_TMP/npm.log"))"

cat >"$npmdir/validate.js" <<'JS'
// Validates every object of rendered manifests (YAML streams given as arguments) against the
// Kubernetes schemas of kubernetes-models, and reports fields the schemas do not know: the
// validator is run on a Proxy that records every property it reads; a property it never read is
// not in the schema (ajv's generated code reads each declared property and enumerates maps).
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

function track(value, where, seen) {
  if (value === null || typeof value !== "object") return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof key === "string" && Object.prototype.hasOwnProperty.call(target, key)) {
        seen.add(where + "/" + key);
        return track(v, where + "/" + key, seen);
      }
      return v;
    },
    ownKeys(target) {
      for (const k of Reflect.ownKeys(target)) if (typeof k === "string") seen.add(where + "/" + k);
      return Reflect.ownKeys(target);
    },
  });
}

function leaves(value, where, out) {
  if (value === null || typeof value !== "object") return out;
  for (const k of Object.keys(value)) {
    out.push(where + "/" + k);
    leaves(value[k], where + "/" + k, out);
  }
  return out;
}

function modelFor(obj) {
  if (!obj || typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") return null;
  if (!/^[a-z0-9.]*\/?v[0-9a-z]+$/.test(obj.apiVersion) || !/^[A-Z][A-Za-z]+$/.test(obj.kind)) return null;
  try {
    const mod = require(path.join("kubernetes-models", obj.apiVersion, obj.kind));
    return mod[obj.kind] || null;
  } catch (e) {
    return null;
  }
}

let problems = 0, objects = 0;
const summary = [];
const all = [];
for (const file of process.argv.slice(2)) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.error(`${file}: YAML error: ${doc.errors[0].message}`);
      problems++;
      continue;
    }
    const obj = doc.toJSON();
    if (obj === null) continue;
    all.push(obj);
    objects++;
    const name = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const Model = modelFor(obj);
    if (!Model) {
      console.error(`${file}: ${name}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      problems++;
      continue;
    }
    const seen = new Set();
    try {
      Model.prototype.validate.call(track(obj, "", seen));
    } catch (e) {
      console.error(`${file}: ${name}: ${e.message}`);
      problems++;
      continue;
    }
    // The generated schemas lose properties named "description" (the generator strips the
    // documentation keyword of that name); accept a top-level one the model's typings declare.
    let declared = "";
    try {
      declared = fs.readFileSync(require.resolve(path.join("kubernetes-models", obj.apiVersion, obj.kind)).replace(/\.js$/, ".d.ts"), "utf8");
    } catch (e) {}
    const unknown = leaves(obj, "", []).filter(
      (p) => !seen.has(p) && !(p === "/description" && declared.includes('"description"?:')));
    // Report the outermost unknown field only.
    const outer = unknown.filter((p) => !unknown.some((q) => q !== p && p.startsWith(q + "/")));
    for (const p of outer) {
      console.error(`${file}: ${name}: unknown field ${p}`);
      problems++;
    }
    summary.push(name);
  }
}
console.log(`${objects} objects, ${problems} problems: ${summary.join(" ")}`);
if (process.env.SC_CHECK_REFS) {
  // Names that must resolve inside the rendered set.
  const byKind = (k) => all.filter((o) => o.kind === k).map((o) => o.metadata.name);
  for (const o of all) {
    const spec = o.spec && o.spec.template && o.spec.template.spec;
    if (!spec) continue;
    const n = `${o.kind}/${o.metadata.name}`;
    if (spec.priorityClassName && !byKind("PriorityClass").includes(spec.priorityClassName)) {
      console.error(`${n}: priorityClassName ${spec.priorityClassName} is not rendered`);
      problems++;
    }
    if (o.kind === "StatefulSet" && !byKind("Service").includes(o.spec.serviceName)) {
      console.error(`${n}: serviceName ${o.spec.serviceName} is not rendered`);
      problems++;
    }
    for (const c of spec.containers) {
      const ports = (c.ports || []).map((p) => p.name);
      for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const port = c[probe] && c[probe].httpGet && c[probe].httpGet.port;
        if (typeof port === "string" && !ports.includes(port)) {
          console.error(`${n}: ${probe} names port ${port}, which ${c.name} does not declare`);
          problems++;
        }
      }
      if (!c.resources || !c.resources.requests || !c.resources.limits) {
        console.error(`${n}: container ${c.name} lacks resource requests or limits`);
        problems++;
      }
    }
  }
}
process.exit(problems ? 1 : 0);
JS

cat >"$npmdir/expect.js" <<'JS'
// What the SpareCycles deployment relies on, checked on the rendered objects of one variant.
"use strict";
const fs = require("fs");
const YAML = require("yaml");
const [file, variant] = process.argv.slice(2);
const objs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJSON()).filter(Boolean);
let bad = 0;
const need = (ok, what) => { if (!ok) { console.error(`${variant}: ${what}`); bad++; } };
const find = (kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const sts = find("StatefulSet", "sparecycles-coordinator");
const svc = find("Service", "sparecycles-coordinator");
const pc = find("PriorityClass", "sparecycles-scavenger");
const workers = variant === "daemonset" ? find("DaemonSet", "sparecycles-worker") : find("Deployment", "sparecycles-worker");
need(sts && svc && pc && workers, "coordinator StatefulSet, Service, PriorityClass and workers are rendered");
need(!(variant === "daemonset" && find("Deployment", "sparecycles-worker")), "the DaemonSet variant has no worker Deployment");
if (sts && svc && pc && workers) {
  const c = sts.spec.template.spec.containers[0];
  const args = c.args.join(" ");
  need(c.image.includes("sparecycles-coordinator"), "the coordinator image");
  const data = (c.volumeMounts || []).find((m) => m.name === "data");
  need(data && data.mountPath === "/var/lib/sparecycles-coordinator", "the data volume is mounted where the image keeps --data");
  need((sts.spec.volumeClaimTemplates || []).some((v) => v.metadata.name === "data"), "a volume claim template for data");
  need(/--http 0\.0\.0\.0:7739/.test(args), "--http 0.0.0.0:7739 for the probes");
  need(/--peers tcp:\/\/0\.0\.0\.0:7737/.test(args) && /--clients tcp:\/\/0\.0\.0\.0:7738/.test(args), "peers and clients on every interface");
  need(c.readinessProbe.httpGet.path === "/readyz" && c.readinessProbe.httpGet.port === "http", "readiness probe GET /readyz on port http");
  need(c.livenessProbe.httpGet.path === "/healthz" && c.livenessProbe.httpGet.port === "http", "liveness probe GET /healthz on port http");
  const ports = Object.fromEntries(svc.spec.ports.map((p) => [p.name, p.port]));
  need(ports.peers === 7737 && ports.clients === 7738 && ports.http === 7739, "the Service exposes peers, clients and http");
  const sel = svc.spec.selector || {};
  need(Object.entries(sel).every(([k, v]) => (sts.spec.template.metadata.labels || {})[k] === v), "the Service selects the coordinator pods");
  need(pc.value < 0 && pc.preemptionPolicy === "Never", "the scavenger class is below 0 and never preempts");
  const ps = workers.spec.template.spec;
  const w = ps.containers[0];
  need(ps.priorityClassName === "sparecycles-scavenger", "workers use the scavenger class");
  need(w.args.join(" ").includes("--profile cluster"), "workers run the cluster profile");
  need(w.args.join(" ").includes("tcp://sparecycles-coordinator:7737"), "workers reach the coordinator through the Service");
  need(w.resources.requests.cpu && w.resources.limits.cpu, "worker CPU requests and limits");
  const pre = w.lifecycle && w.lifecycle.preStop && w.lifecycle.preStop.exec && w.lifecycle.preStop.exec.command;
  need(pre && pre[0] === "/usr/bin/sparecycles-worker" && pre[1] === "leave", "preStop runs sparecycles-worker leave");
  need(ps.terminationGracePeriodSeconds >= 30, "a grace period long enough for the leave");
  const env = (w.env || []).find((e) => e.valueFrom && e.valueFrom.secretKeyRef);
  need(env && env.valueFrom.secretKeyRef.name === "sparecycles-keys", "the coordinator key comes from the sparecycles-keys Secret");
  if (variant === "example") need(find("Secret", "sparecycles-keys"), "the example overlay generates the keys Secret");
}
console.log(`${variant}: ${bad ? bad + " missing" : "everything the deployment relies on is there"}`);
process.exit(bad ? 1 : 0);
JS

# A kubectl whose kustomize is v4 or later (kubectl >= 1.21). Debian 12 packages kubectl 1.20
# (kubernetes-client), whose kustomize v2.0.3 predates directories in `resources`.
kustomize_ok() { kubectl version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([4-9]|[1-9][0-9])'; }
if ! command -v kubectl >/dev/null; then
  sc_log "installing kubernetes-client (kubectl)"
  sc_apt_install kubernetes-client || true
fi
# The raw files validate with or without a renderer.
raw=()
for f in "$src"/base/*.yaml "$src"/workers-daemonset/worker-daemonset.yaml "$src"/example/namespace.yaml; do
  [[ $(basename "$f") == kustomization.yaml ]] || raw+=("$f")
done
(cd "$npmdir" && SC_CHECK_REFS=1 node validate.js "${raw[@]}") || sc_fail "the manifest files do not validate"
if ! command -v kubectl >/dev/null || ! kustomize_ok; then
  have=$(command -v kubectl >/dev/null && kubectl version --client 2>&1 | head -n1 || echo "no kubectl")
  sc_skip "no kubectl with kustomize v4+ (kubectl >= 1.21) here ($have); validated the ${#raw[@]} manifest files unrendered only"
fi

for variant in base daemonset example; do
  dir=$src/$variant
  [[ $variant == daemonset ]] && dir=$src/workers-daemonset
  out=$SC_TMP/$variant.yaml
  kubectl kustomize "$dir" >"$out" 2>"$SC_TMP/$variant.err" || { cat "$SC_TMP/$variant.err" >&2; sc_fail "kubectl kustomize $dir failed"; }
  [[ ! -s $SC_TMP/$variant.err ]] || { cat "$SC_TMP/$variant.err" >&2; sc_fail "kubectl kustomize $dir warned"; }
  (cd "$npmdir" && SC_CHECK_REFS=1 node validate.js "$out") || sc_fail "$variant does not validate"
  (cd "$npmdir" && node expect.js "$out" "$variant") || sc_fail "$variant lacks what the deployment relies on"
done

# The checks can fail: an unknown field, a wrong type and a dangling priority class are caught.
sed 's/^\(      priorityClassName:\)/      priorityClasName:/' "$SC_TMP/base.yaml" >"$SC_TMP/bad-field.yaml"
sed 's/containerPort: 7737/containerPort: "7737x"/' "$SC_TMP/base.yaml" >"$SC_TMP/bad-type.yaml"
sed 's/priorityClassName: sparecycles-scavenger/priorityClassName: nonexistent/' "$SC_TMP/base.yaml" >"$SC_TMP/bad-ref.yaml"
for bad in bad-field bad-type bad-ref; do
  cmp -s "$SC_TMP/$bad.yaml" "$SC_TMP/base.yaml" && sc_fail "the $bad mutation did not change anything"
  if (cd "$npmdir" && SC_CHECK_REFS=1 node validate.js "$SC_TMP/$bad.yaml" >/dev/null 2>&1); then
    sc_fail "the validator accepted $bad"
  fi
done
echo "PASS: base, DaemonSet variant and example overlay render and validate with no unknown field"
