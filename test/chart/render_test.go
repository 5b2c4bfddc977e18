package chart_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// insecureFlag is the dev-only flag no install may ever pass.
const insecureFlag = "--allow-insecure-vendor-urls"

// TestLint: helm lint finds nothing above INFO, with the defaults and with every option.
func TestLint(t *testing.T) {
	for name, vals := range map[string]map[string]any{"defaults": nil, "every option": everyOption()} {
		t.Run(name, func(t *testing.T) {
			l := lint.RunAll(chartDir(t), vals, releaseNamespace)
			for _, m := range l.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("helm lint: %s", m.Error())
				}
			}
		})
	}
}

func managerOf(t *testing.T, r rendered) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := into[appsv1.Deployment](t, r.one(t, "Deployment", fullname))
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

// TestRenderDefaults: what `helm install` with no values creates.
func TestRenderDefaults(t *testing.T) {
	r := render(t, nil)

	want := []string{
		"ServiceAccount/" + fullname, "ClusterRole/" + fullname + "-manager", "ClusterRoleBinding/" + fullname + "-manager",
		"Role/" + fullname + "-leader-election", "RoleBinding/" + fullname + "-leader-election",
		"ClusterRole/" + fullname + "-connection-viewer", "ClusterRole/" + fullname + "-connection-editor",
		"ClusterRole/" + fullname + "-connector-viewer",
		"Deployment/" + fullname, "Service/" + fullname, "PodDisruptionBudget/" + fullname,
	}
	got := r.kinds()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("default render:\n got %v\nwant %v", got, want)
	}
	for _, o := range r.objects {
		if ns := o.GetNamespace(); ns != "" && ns != releaseNamespace {
			t.Errorf("%s/%s is in namespace %q, want the release's", o.GetKind(), o.GetName(), ns)
		}
	}

	d, c := managerOf(t, r)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if !slices.Contains(c.Args, "--leader-elect=true") {
		t.Errorf("args %v lack --leader-elect=true", c.Args)
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--api-cert-dir") {
			t.Errorf("without api.tls the API serves its self-signed certificate, but args hold %s", a)
		}
	}
	checkRestricted(t, d)
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: liveness %+v readiness %+v, want /healthz and /readyz", c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	var podNS bool
	for _, e := range c.Env {
		podNS = podNS || (e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace")
	}
	if !podNS {
		t.Errorf("env %v: the manager must learn its namespace (Lease, OAuth2 client Secrets) from POD_NAMESPACE", c.Env)
	}
	if d.Spec.Template.Spec.ServiceAccountName != fullname {
		t.Errorf("serviceAccountName %q, want %q", d.Spec.Template.Spec.ServiceAccountName, fullname)
	}

	svc := into[corev1.Service](t, r.one(t, "Service", fullname))
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
		if p.TargetPort != intstr.FromString(p.Name) {
			t.Errorf("Service port %s targets %v, want the container port of that name", p.Name, p.TargetPort)
		}
	}
	if ports["api"] != 8082 || ports["metrics"] != 8080 {
		t.Errorf("Service ports %v, want api 8082 (API and webhooks) and metrics 8080", ports)
	}
	checkSelects(t, svc.Spec.Selector, d)

	pdb := into[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", fullname))
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	checkSelects(t, pdb.Spec.Selector.MatchLabels, d)

	if !strings.Contains(r.notes, "kubectl get connectors,connections -A") || !strings.Contains(r.notes, "api.externalURL") {
		t.Errorf("NOTES.txt says neither how to look nor what to set:\n%s", r.notes)
	}
}

// checkRestricted fails t unless the pod meets the restricted Pod Security Standard.
func checkRestricted(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", ps)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
			!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("container %s securityContext %+v: want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL", c.Name, sc)
		}
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.EmptyDir == nil && v.Secret == nil {
			t.Errorf("volume %s is neither emptyDir nor secret", v.Name)
		}
	}
}

// checkSelects fails t unless selector picks the Deployment's pods.
func checkSelects(t *testing.T, selector map[string]string, d *appsv1.Deployment) {
	t.Helper()
	if len(selector) == 0 {
		t.Errorf("empty selector")
	}
	for k, v := range selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pods' labels %v", k, v, d.Spec.Template.Labels)
		}
	}
}

// TestRenderEveryOption: every optional block on, with values other than the defaults.
func TestRenderEveryOption(t *testing.T) {
	r := render(t, everyOption())
	d, c := managerOf(t, r)
	if *d.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", *d.Spec.Replicas)
	}
	for _, a := range []string{"--api-bind-address=:9443", "--api-external-url=https://connectors.example.com",
		"--api-cert-dir=/etc/connector-operator/api-tls", "--v=1", "--max-concurrent-reconciles=8"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %v lack %s", c.Args, a)
		}
	}
	checkRestricted(t, d)
	spec := d.Spec.Template.Spec
	if spec.PriorityClassName != "system-cluster-critical" || spec.NodeSelector["kubernetes.io/os"] != "linux" ||
		len(spec.Tolerations) != 1 || len(spec.TopologySpreadConstraints) != 1 ||
		d.Spec.Template.Annotations["example.com/team"] != "platform" || d.Spec.Template.Labels["example.com/tier"] != "control" {
		t.Errorf("pod placement and metadata values not applied: %+v", d.Spec.Template)
	}

	// cert-manager issues the API certificate into the Secret the pod mounts.
	cert := r.one(t, "Certificate", fullname+"-api")
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	issuer, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if secretName != fullname+"-api-tls" || issuer["name"] != "platform-ca" || issuer["kind"] != "ClusterIssuer" || issuer["group"] != "cert-manager.io" {
		t.Errorf("Certificate secretName %q issuerRef %v", secretName, issuer)
	}
	for _, n := range []string{fullname + "." + releaseNamespace + ".svc", "connectors.example.com"} {
		if !slices.Contains(dns, n) {
			t.Errorf("Certificate dnsNames %v lack %s", dns, n)
		}
	}
	mounted := false
	for _, v := range spec.Volumes {
		mounted = mounted || (v.Secret != nil && v.Secret.SecretName == secretName)
	}
	if !mounted {
		t.Errorf("the pod does not mount the Certificate's Secret %s: %+v", secretName, spec.Volumes)
	}

	pdb := into[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", fullname))
	if pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PDB minAvailable %v, want 2", pdb.Spec.MinAvailable)
	}

	sm := r.one(t, "ServiceMonitor", fullname)
	if sm.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v lack the one Prometheus selects by", sm.GetLabels())
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["path"] != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %v, want the metrics port's /metrics", eps)
	}
	smSel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	svc := r.one(t, "Service", fullname)
	for k, v := range smSel {
		if svc.GetLabels()[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, which the Service lacks (%v)", k, v, svc.GetLabels())
		}
	}

	checkAlerts(t, r.one(t, "PrometheusRule", fullname))
	checkNetworkPolicy(t, into[networkingv1.NetworkPolicy](t, r.one(t, "NetworkPolicy", fullname)), d)
	checkDashboards(t, r)
}

// checkAlerts: the four alerts the issue names, each on a metric the code declares.
func checkAlerts(t *testing.T, pr *unstructured.Unstructured) {
	t.Helper()
	known := metricNames(t)
	if !known["connector_connection_ready"] {
		t.Fatalf("found no metric declarations (%v): the scan is broken", known)
	}
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	alerts := map[string]map[string]any{}
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			rule := r.(map[string]any)
			alerts[rule["alert"].(string)] = rule
		}
	}
	metric := regexp.MustCompile(`connector_[a-z0-9_]+`)
	labels := regexp.MustCompile(`(by|without) \([^)]*\)|\{[^}]*\}`)
	want := map[string]string{
		"ConnectorConnectionNotReady": "connector_connection_ready",
		"ConnectorSyncLagHigh":        "connector_sync_lag_seconds",
		"ConnectorSinkRejecting":      "connector_sync_batches_total",
		"ConnectorVendorAuthFailing":  "connector_vendor_requests_total",
	}
	for name, m := range want {
		rule, ok := alerts[name]
		if !ok {
			t.Errorf("PrometheusRule lacks alert %s (has %v)", name, alerts)
			continue
		}
		expr, _ := rule["expr"].(string)
		if !strings.Contains(expr, m) {
			t.Errorf("%s: expr %q does not read %s", name, expr, m)
		}
		// Label names (in by (…) and {…}) are not metrics.
		bare := labels.ReplaceAllString(expr, "")
		for _, used := range metric.FindAllString(bare, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(used, "_bucket"), "_count"), "_sum")
			if !known[used] && !known[base] {
				t.Errorf("%s reads %s, which no code declares", name, used)
			}
		}
		if rule["for"] == nil || rule["labels"].(map[string]any)["severity"] == nil {
			t.Errorf("%s has no for or severity: %v", name, rule)
		}
	}
	if alerts["ConnectorConnectionNotReady"]["for"] != "20m" {
		t.Errorf("prometheusRule.notReadyFor not applied: %v", alerts["ConnectorConnectionNotReady"])
	}
}

// checkNetworkPolicy: ingress only to the API and metrics ports; egress DNS, the API
// server, HTTPS and the extra rule.
func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy, d *appsv1.Deployment) {
	t.Helper()
	checkSelects(t, np.Spec.PodSelector.MatchLabels, d)
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("policyTypes %v", np.Spec.PolicyTypes)
	}
	var in []string
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			in = append(in, p.Port.String())
		}
	}
	if !slices.Equal(in, []string{"api", "metrics"}) {
		t.Errorf("ingress ports %v, want api and metrics only", in)
	}
	if len(np.Spec.Ingress[1].From) != 1 {
		t.Errorf("networkPolicy.ingress.metricsFrom not applied: %+v", np.Spec.Ingress[1])
	}
	var out []string
	for _, rule := range np.Spec.Egress {
		for _, p := range rule.Ports {
			out = append(out, string(*p.Protocol)+"/"+p.Port.String())
		}
	}
	for _, p := range []string{"UDP/53", "TCP/53", "TCP/443", "TCP/6443", "TCP/8080"} {
		if !slices.Contains(out, p) {
			t.Errorf("egress ports %v lack %s", out, p)
		}
	}
	// HTTPS to anywhere still excludes the metadata address.
	for _, rule := range np.Spec.Egress {
		for _, peer := range rule.To {
			if peer.IPBlock != nil && peer.IPBlock.CIDR == "0.0.0.0/0" && !slices.Contains(peer.IPBlock.Except, "169.254.0.0/16") {
				t.Errorf("egress to %s lets pods reach link-local (cloud metadata) addresses", peer.IPBlock.CIDR)
			}
		}
	}
}

// checkDashboards: the ConfigMap holds every dashboards/*.json of the chart, as valid
// JSON, labelled for Grafana's sidecar.
func checkDashboards(t *testing.T, r rendered) {
	t.Helper()
	cm := into[corev1.ConfigMap](t, r.one(t, "ConfigMap", fullname+"-dashboards"))
	if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Platform" {
		t.Errorf("dashboards ConfigMap labels %v annotations %v", cm.Labels, cm.Annotations)
	}
	files, _ := filepath.Glob(filepath.Join(chartDir(t), "dashboards", "*.json"))
	if len(files) == 0 {
		t.Fatal("the chart holds no dashboards/*.json")
	}
	for _, f := range files {
		data, ok := cm.Data[filepath.Base(f)]
		if !ok {
			t.Errorf("dashboards ConfigMap lacks %s (has %d keys)", filepath.Base(f), len(cm.Data))
			continue
		}
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid([]byte(data)) || strings.TrimSpace(data) != strings.TrimSpace(string(want)) {
			t.Errorf("dashboard %s in the ConfigMap is not the chart's file, or not JSON", filepath.Base(f))
		}
	}
}

// TestRenderRefusals: combinations that cannot work are refused at render time.
func TestRenderRefusals(t *testing.T) {
	cases := map[string]map[string]any{
		"two replicas without leader election": {"leaderElect": false},
		"cert-manager without an issuer": {"api": map[string]any{"tls": map[string]any{
			"certManager": map[string]any{"enabled": true}}}},
		"no ServiceAccount name when not created": {"serviceAccount": map[string]any{"create": false}},
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := renderAs(t, release, releaseNamespace, vals); err == nil {
				t.Errorf("rendered %v without an error", vals)
			}
		})
	}
	// One replica: no PDB, which would block every node drain.
	if got := render(t, map[string]any{"replicaCount": 1}).find("PodDisruptionBudget", ""); len(got) != 0 {
		t.Errorf("one replica rendered a PodDisruptionBudget")
	}
}

// TestSchemaRefusesBadValues: values.schema.json types every value and knows every key.
func TestSchemaRefusesBadValues(t *testing.T) {
	ch := loadChart(t)
	if _, err := renderValues(ch, release, releaseNamespace, everyOption()); err != nil {
		t.Fatalf("the schema refuses the values of TestRenderEveryOption: %v", err)
	}
	bad := map[string]map[string]any{
		"unknown top-level key":    {"replicas": 2},
		"unknown nested key":       {"api": map[string]any{"tls": map[string]any{"secretname": "x"}}},
		"replicaCount as a string": {"replicaCount": "two"},
		"zero replicas":            {"replicaCount": 0},
		"log format":               {"logFormat": "xml"},
		"port out of range":        {"api": map[string]any{"port": 70000}},
		"issuer kind":              {"api": map[string]any{"tls": map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"kind": "Vault"}}}}},
		"boolean as a string":      {"serviceMonitor": map[string]any{"enabled": "yes"}},
		"duration":                 {"prometheusRule": map[string]any{"notReadyFor": "fifteen minutes"}},
		"plain http external URL":  {"api": map[string]any{"externalURL": "http://connectors.example.com"}},
		"label value not a string": {"podLabels": map[string]any{"tier": 1}},
		"cidr":                     {"networkPolicy": map[string]any{"egress": map[string]any{"httpsCIDRs": []any{"everywhere"}}}},
	}
	for name, vals := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := renderValues(ch, release, releaseNamespace, vals); err == nil {
				t.Errorf("values.schema.json accepted %v", vals)
			}
		})
	}
}

// TestNeverInsecure: no render, whatever the values, passes the dev-only flag.
func TestNeverInsecure(t *testing.T) {
	for name, vals := range map[string]map[string]any{"defaults": nil, "every option": everyOption()} {
		for _, o := range render(t, vals).objects {
			b, _ := json.Marshal(o.Object)
			if strings.Contains(string(b), strings.TrimPrefix(insecureFlag, "--")) {
				t.Errorf("%s: %s/%s mentions %s", name, o.GetKind(), o.GetName(), insecureFlag)
			}
		}
	}
	// Nor does the kustomize install.
	for _, f := range []string{"manager.yaml"} {
		for _, o := range readObjects(t, filepath.Join(repoRoot(t), "config", "manager", f)) {
			if d, ok := o.Object["spec"]; ok {
				b, _ := json.Marshal(d)
				if strings.Contains(string(b), strings.TrimPrefix(insecureFlag, "--")) {
					t.Errorf("config/manager/%s: %s passes %s", f, o.GetName(), insecureFlag)
				}
			}
		}
	}
}

// ruleSet flattens RBAC rules into "group/resource verb" strings.
func ruleSet(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+" "+v)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
