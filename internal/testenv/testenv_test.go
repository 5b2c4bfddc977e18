package testenv

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// TestShippedRolesGrantNoWildcards: least privilege. Every role config/rbac ships (the
// manager's, leader election's and the tenants') names its groups, resources and verbs;
// a `*` would grant whatever a future API adds.
func TestShippedRolesGrantNoWildcards(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs, sa, err := ShippedRBAC(root, "connector-system")
	if err != nil {
		t.Fatal(err)
	}
	if sa != "connector-controller-manager" {
		t.Errorf("ServiceAccount %q, want connector-controller-manager (config/default's prefix on config/rbac's name)", sa)
	}
	roles := 0
	for _, obj := range objs {
		var rules []rbacv1.PolicyRule
		switch r := obj.(type) {
		case *rbacv1.ClusterRole:
			if r.AggregationRule != nil {
				t.Errorf("ClusterRole %s aggregates other roles: its grants are not visible here", r.Name)
			}
			rules = r.Rules
		case *rbacv1.Role:
			rules = r.Rules
		default:
			continue
		}
		roles++
		for _, rule := range rules {
			for field, values := range map[string][]string{
				"apiGroups": rule.APIGroups, "resources": rule.Resources, "verbs": rule.Verbs, "resourceNames": rule.ResourceNames,
			} {
				for _, v := range values {
					if strings.Contains(v, "*") {
						t.Errorf("%s %s: rule %+v has %q in %s", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), rule, v, field)
					}
				}
			}
			if len(rule.NonResourceURLs) > 0 {
				t.Errorf("%s: rule %+v grants non-resource URLs", obj.GetName(), rule)
			}
			if len(rule.Verbs) == 0 || len(rule.Resources) == 0 || len(rule.APIGroups) == 0 {
				t.Errorf("%s: rule %+v is incomplete", obj.GetName(), rule)
			}
		}
	}
	if roles < 2 {
		t.Fatalf("found %d roles in config/rbac, want at least the manager's and leader election's", roles)
	}
}

// TestChartManagerRoleIsGenerated: the chart's manager ClusterRole holds exactly the rules
// controller-gen wrote into config/rbac/role.yaml (hack/chart-rbac.sh; `make verify`).
func TestChartManagerRoleIsGenerated(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	generated, err := readObjects(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// controller-gen writes the manager's ClusterRole and, from the namespaced markers,
	// the leader-election Role (test/chart checks that one).
	var want []rbacv1.PolicyRule
	clusterRoles := 0
	for _, o := range generated {
		if cr, ok := o.(*rbacv1.ClusterRole); ok {
			want, clusterRoles = cr.Rules, clusterRoles+1
		}
	}
	if clusterRoles != 1 {
		t.Fatalf("config/rbac/role.yaml holds %d ClusterRoles, want 1", clusterRoles)
	}

	chart, err := os.ReadFile(filepath.Join(root, "charts", "connector-operator", "templates", "clusterrole.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Everything above rules: is templated metadata.
	_, rules, ok := strings.Cut(string(chart), "\nrules:\n")
	if !ok {
		t.Fatal("the chart's clusterrole.yaml has no rules")
	}
	var got struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	if err := yaml.Unmarshal([]byte("rules:\n"+rules), &got); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got.Rules, want, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) &&
			slices.Equal(a.Verbs, b.Verbs) && slices.Equal(a.ResourceNames, b.ResourceNames)
	}) {
		t.Errorf("the chart's manager ClusterRole is stale; run make chart-rbac.\nchart: %+v\nconfig/rbac: %+v", got.Rules, want)
	}
}

// TestManagerConfigIsTheServiceAccount: the manager's identity is the ServiceAccount,
// allowed what the shipped role grants and refused the rest.
func TestManagerConfigIsTheServiceAccount(t *testing.T) {
	e, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	ctx := context.Background()

	clients, err := kubernetes.NewForConfig(e.ManagerConfig)
	if err != nil {
		t.Fatal(err)
	}
	review, err := clients.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := review.Status.UserInfo.Username; got != "system:serviceaccount:connector-system:connector-controller-manager" {
		t.Errorf("the manager acts as %q", got)
	}

	mc, err := e.ManagerClient()
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.List(ctx, &v1alpha1.ConnectionList{}); err != nil {
		t.Errorf("listing Connections, which the role grants: %v", err)
	}
	// Neither granted: the manager never makes namespaces nor reads ConfigMaps.
	if err := mc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "not-allowed"}}); !apierrors.IsForbidden(err) {
		t.Errorf("creating a namespace as the manager: %v, want Forbidden", err)
	}
	if err := mc.List(ctx, &corev1.ConfigMapList{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing ConfigMaps as the manager: %v, want Forbidden", err)
	}
	if got := e.Refused(); len(got) != 2 || got[0] != "POST /api/v1/namespaces" || got[1] != "GET /api/v1/configmaps" {
		t.Errorf("Refused() = %q, want the namespace create and the ConfigMap list", got)
	}
	// The admin client is not restricted.
	if err := e.Client.List(ctx, &corev1.ConfigMapList{}); err != nil {
		t.Errorf("listing ConfigMaps as admin: %v", err)
	}
}

// TestNoControlPlaneFails: a missing control plane is an error that says how to build
// one, never a skip.
func TestNoControlPlaneFails(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", t.TempDir())
	_, err := Start(Options{})
	if err == nil || !strings.Contains(err.Error(), "make control-plane") {
		t.Fatalf("Start without binaries: %v", err)
	}
}
