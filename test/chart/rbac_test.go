package chart_test

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// markerRules reads every +kubebuilder:rbac marker of the packages `make manifests` scans
// (api, controllers, internal), as "group/resource verb" strings, split into cluster-wide
// rules and those of the operator's own namespace (namespace=…).
func markerRules(t *testing.T) (cluster, namespaced []string) {
	t.Helper()
	root := repoRoot(t)
	for _, dir := range []string{"api", "controllers", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				args, ok := strings.CutPrefix(line, "// +kubebuilder:rbac:")
				if !ok {
					continue
				}
				kv := map[string][]string{}
				for _, a := range strings.Split(args, ",") {
					k, v, _ := strings.Cut(a, "=")
					kv[k] = strings.Split(strings.Trim(v, `"`), ";")
				}
				var rules []string
				for _, g := range kv["groups"] {
					for _, r := range kv["resources"] {
						for _, v := range kv["verbs"] {
							rules = append(rules, g+"/"+r+" "+v)
						}
					}
				}
				if _, ok := kv["namespace"]; ok {
					namespaced = append(namespaced, rules...)
				} else {
					cluster = append(cluster, rules...)
				}
			}
			return sc.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(cluster)
	slices.Sort(namespaced)
	return slices.Compact(cluster), slices.Compact(namespaced)
}

// writable says, for every write the manager may make, why: the code's need, named in
// DESIGN.md. A write not listed here fails TestRBACLeastPrivilege.
var writable = map[string]string{
	// DESIGN.md OAuth2: rotated tokens are written back to the Connection's Secret; the
	// callback writes the tokens to the Connection's Secret, creating it when the
	// Connection names one that does not exist yet, and keeps the state key and the
	// spent states (valid on any replica) in Secrets of the operator's namespace.
	"/secrets update": "OAuth2 tokens written back (refresh, callback); state Secrets",
	"/secrets create": "OAuth2 callback: the Connection's token Secret when absent; state key and spent states",
	// DESIGN.md Webhook receiver: the request reaches the leader through an annotation;
	// Connectors beyond Atlassian: the replication-slot finalizer.
	"connectors.unified.dev/connections patch": "webhook receiver annotates the Connection; finalizers of vendor resources",
	// Status through one patch path (STYLE.md 8); never the spec.
	"connectors.unified.dev/connections/status patch": "Connection status",
	"connectors.unified.dev/connectors/status patch":  "Connector status",
	// DESIGN.md Events.
	"events.k8s.io/events create": "Events on state changes",
	"events.k8s.io/events patch":  "Event series",
	// DESIGN.md HTTP API: authentication and authorization of callers.
	"authentication.k8s.io/tokenreviews create":        "API callers' tokens",
	"authorization.k8s.io/subjectaccessreviews create": "API callers' permissions",
}

// writableInNamespace are the writes of the leader-election Role, in the release
// namespace only.
var writableInNamespace = map[string]string{
	"coordination.k8s.io/leases create": "take the leader Lease",
	"coordination.k8s.io/leases update": "renew and release it",
	"/events create":                    "LeaderElection Events (controller-runtime records them through core Events)",
	"/events patch":                     "their series",
}

func isWrite(rule string) bool {
	_, verb, _ := strings.Cut(rule, " ")
	return !slices.Contains([]string{"get", "list", "watch"}, verb)
}

// TestRBACLeastPrivilege: the chart's roles grant nothing with "*", the manager holds
// exactly what the +kubebuilder:rbac markers name (cluster-wide, and leader election in
// the release namespace only), Secrets are only read, plus the OAuth2 writes, and every
// other write is one the code needs.
func TestRBACLeastPrivilege(t *testing.T) {
	r := render(t, everyOption())
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, o := range r.find(kind, "") {
			for _, rule := range into[rbacv1.ClusterRole](t, o).Rules {
				for _, list := range [][]string{rule.Verbs, rule.Resources, rule.APIGroups, rule.NonResourceURLs} {
					if slices.ContainsFunc(list, func(s string) bool { return strings.Contains(s, "*") }) {
						t.Errorf("%s %s grants a wildcard: %+v", kind, o.GetName(), rule)
					}
				}
			}
		}
	}

	cluster := ruleSet(into[rbacv1.ClusterRole](t, r.one(t, "ClusterRole", fullname+"-manager")).Rules)
	leader := into[rbacv1.Role](t, r.one(t, "Role", fullname+"-leader-election"))
	namespaced := ruleSet(leader.Rules)
	if leader.Namespace != releaseNamespace {
		t.Errorf("the leader-election Role is in %q, want the release namespace", leader.Namespace)
	}
	mc, mn := markerRules(t)
	if !slices.Equal(cluster, mc) {
		t.Errorf("the chart's ClusterRole is not what the markers name (run make manifests chart-rbac):\n chart   %v\n markers %v", cluster, mc)
	}
	if !slices.Equal(namespaced, mn) {
		t.Errorf("the chart's leader-election Role is not what the namespace markers name:\n chart   %v\n markers %v", namespaced, mn)
	}

	for _, rule := range cluster {
		if strings.HasPrefix(rule, "/secrets ") && !slices.Contains([]string{"get", "list", "watch", "update", "create"}, strings.TrimPrefix(rule, "/secrets ")) {
			t.Errorf("the manager may %s Secrets", rule)
		}
		if isWrite(rule) && writable[rule] == "" {
			t.Errorf("the manager's ClusterRole grants %q, a write no need of the operator names", rule)
		}
	}
	for _, rule := range namespaced {
		if writableInNamespace[rule] == "" && isWrite(rule) {
			t.Errorf("the leader-election Role grants %q, which leader election does not need", rule)
		}
		if !isWrite(rule) && rule != "coordination.k8s.io/leases get" {
			t.Errorf("the leader-election Role grants %q, which leader election does not need", rule)
		}
	}
	for rule := range writableInNamespace {
		if slices.Contains(cluster, rule) {
			t.Errorf("%q is granted cluster-wide; leader election needs it in the release namespace only", rule)
		}
	}

	// The bindings name the chart's ServiceAccount and nothing else.
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range r.find(kind, "") {
			b := into[rbacv1.RoleBinding](t, o)
			if len(b.Subjects) != 1 || b.Subjects[0].Kind != rbacv1.ServiceAccountKind || b.Subjects[0].Name != fullname || b.Subjects[0].Namespace != releaseNamespace {
				t.Errorf("%s %s binds %+v, want only ServiceAccount %s/%s", kind, b.Name, b.Subjects, releaseNamespace, fullname)
			}
		}
	}

	// Tenants: a viewer of Connections never reads vendor data through the API.
	viewer := ruleSet(into[rbacv1.ClusterRole](t, r.one(t, "ClusterRole", fullname+"-connection-viewer")).Rules)
	for _, rule := range viewer {
		if strings.Contains(rule, "connections/data") || strings.Contains(rule, "connections/credentials") || isWrite(rule) {
			t.Errorf("connection-viewer grants %q", rule)
		}
	}
}

// TestKustomizeInstallIsEquivalent: config/default (config/rbac, config/manager) grants
// the same rules and runs the manager with the same flags, probes, security context and
// resources as the chart with its defaults, and keeps a PodDisruptionBudget alike.
func TestKustomizeInstallIsEquivalent(t *testing.T) {
	r := render(t, nil)
	root := repoRoot(t)

	var kCluster, kLeader []string
	for _, o := range readObjects(t, filepath.Join(root, "config", "rbac", "role.yaml")) {
		switch o.GetKind() {
		case "ClusterRole":
			kCluster = ruleSet(into[rbacv1.ClusterRole](t, o).Rules)
		case "Role":
			kLeader = ruleSet(into[rbacv1.Role](t, o).Rules)
		}
	}
	if got := ruleSet(into[rbacv1.ClusterRole](t, r.one(t, "ClusterRole", fullname+"-manager")).Rules); !slices.Equal(got, kCluster) {
		t.Errorf("ClusterRole: chart %v, config/rbac %v (run make chart-rbac)", got, kCluster)
	}
	if got := ruleSet(into[rbacv1.Role](t, r.one(t, "Role", fullname+"-leader-election")).Rules); !slices.Equal(got, kLeader) {
		t.Errorf("leader-election Role: chart %v, config/rbac %v (run make chart-rbac)", got, kLeader)
	}
	// The kustomize binding of the leader-election Role names the generated Role.
	for _, o := range readObjects(t, filepath.Join(root, "config", "rbac", "leader_election_role_binding.yaml")) {
		b := into[rbacv1.RoleBinding](t, o)
		if b.RoleRef.Kind != "Role" || b.RoleRef.Name != "manager-role" {
			t.Errorf("config/rbac binds %+v for leader election, want the generated Role manager-role", b.RoleRef)
		}
	}
	for _, res := range []string{"connection_viewer_role.yaml", "connection_editor_role.yaml", "connector_viewer_role.yaml"} {
		k := into[rbacv1.ClusterRole](t, readObjects(t, filepath.Join(root, "config", "rbac", res))[0])
		name := fullname + "-" + strings.ReplaceAll(strings.TrimSuffix(res, "_role.yaml"), "_", "-")
		c := into[rbacv1.ClusterRole](t, r.one(t, "ClusterRole", name))
		if !slices.Equal(ruleSet(c.Rules), ruleSet(k.Rules)) {
			t.Errorf("%s: chart %v, config/rbac %v", name, ruleSet(c.Rules), ruleSet(k.Rules))
		}
	}

	var kd *appsv1.Deployment
	var kpdb *policyv1.PodDisruptionBudget
	for _, f := range []string{"manager.yaml", "pdb.yaml"} {
		for _, o := range readObjects(t, filepath.Join(root, "config", "manager", f)) {
			switch o.GetKind() {
			case "Deployment":
				kd = into[appsv1.Deployment](t, o)
			case "PodDisruptionBudget":
				kpdb = into[policyv1.PodDisruptionBudget](t, o)
			}
		}
	}
	if kd == nil || kpdb == nil {
		t.Fatal("config/manager lacks the Deployment or the PodDisruptionBudget")
	}
	cd, cc := managerOf(t, r)
	kc := kd.Spec.Template.Spec.Containers[0]
	same := func(what string, a, b any) {
		if !equality.Semantic.DeepEqual(a, b) {
			t.Errorf("%s: chart %+v, config/manager %+v", what, a, b)
		}
	}
	same("replicas", cd.Spec.Replicas, kd.Spec.Replicas)
	same("command", cc.Command, kc.Command)
	same("args", cc.Args, kc.Args)
	same("env", cc.Env, kc.Env)
	same("ports", cc.Ports, kc.Ports)
	same("liveness", cc.LivenessProbe, kc.LivenessProbe)
	same("readiness", cc.ReadinessProbe, kc.ReadinessProbe)
	same("container securityContext", cc.SecurityContext, kc.SecurityContext)
	same("pod securityContext", cd.Spec.Template.Spec.SecurityContext, kd.Spec.Template.Spec.SecurityContext)
	same("resources", cc.Resources, kc.Resources)
	same("volumeMounts", cc.VolumeMounts, kc.VolumeMounts)
	same("terminationGracePeriodSeconds", cd.Spec.Template.Spec.TerminationGracePeriodSeconds, kd.Spec.Template.Spec.TerminationGracePeriodSeconds)
	cpdb := into[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", fullname))
	same("PodDisruptionBudget minAvailable", cpdb.Spec.MinAvailable, kpdb.Spec.MinAvailable)
	for k, v := range kpdb.Spec.Selector.MatchLabels {
		if kd.Spec.Template.Labels[k] != v {
			t.Errorf("config/manager's PodDisruptionBudget selects %s=%s, which its pods lack", k, v)
		}
	}
}
