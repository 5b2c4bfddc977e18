package plugin_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

var (
	jiraKey     = client.ObjectKey{Namespace: tenant, Name: "jira"}
	rejectedKey = client.ObjectKey{Namespace: tenant, Name: "rejected"}
	probeKey    = client.ObjectKey{Namespace: otherTenant, Name: "probe-only"}
)

// waitFixtures returns once the fixtures read as the tests expect.
func waitFixtures(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	waitSynced(t, jiraKey)
	g.Eventually(func() string { return conditionReason(t, rejectedKey, v1alpha1.ReadyCondition) }, waitLong, 100*time.Millisecond).
		Should(Equal("False/" + v1alpha1.CredentialsRejectedReason))
	g.Eventually(func() string { return conditionReason(t, probeKey, v1alpha1.ReadyCondition) }, waitLong, 100*time.Millisecond).
		Should(Equal("True/" + v1alpha1.SucceededReason))
	g.Eventually(func() bool {
		var c v1alpha1.Connector
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: brokenConnector}, &c)).To(Succeed())
		r := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ReadyCondition)
		return r != nil && r.Status == "False"
	}, waitLong, 100*time.Millisecond).Should(BeTrue())
}

func readyMessage(t *testing.T, key client.ObjectKey) string {
	return meta.FindStatusCondition(get(t, key).Status.Conditions, v1alpha1.ReadyCondition).Message
}

// TestGet: the tables show which Connectors and Connections are Ready and which are not,
// with the Ready message, in the kubeconfig's namespace, another one, or all.
func TestGet(t *testing.T) {
	g := NewWithT(t)
	waitFixtures(t)

	out, errOut, code := kubectl("get")
	g.Expect(code).To(Equal(0), errOut)
	t.Log("\n" + out)
	g.Expect(out).To(ContainSubstring("CONNECTORS"))
	g.Expect(out).To(ContainSubstring("CONNECTIONS"))
	// NAME TYPE READY CONNECTIONS STATUS...
	var cnr v1alpha1.Connector
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: jiraConnector}, &cnr)).To(Succeed())
	counts := fmt.Sprintf("%d/%d", cnr.Status.ReadyConnections, cnr.Status.Connections)
	g.Expect(row(out, 0, jiraConnector)).To(HaveExactElements(jiraConnector, "jira", "True", counts, "jira", "connector", "at", fake.URL(), "is", "ready"))
	broken := row(out, 0, brokenConnector)
	g.Expect(len(broken)).To(BeNumerically(">", 4))
	g.Expect(broken[2]).To(Equal("False"))

	// NAME TYPE READY ITEMS LAST SYNC SUSPENDED STATUS...
	jira := row(out, 0, "jira")
	g.Expect(jira[:4]).To(HaveExactElements("jira", "jira", "True", "24"))
	g.Expect(jira[5]).To(Equal("False"), "SUSPENDED")
	g.Expect(strings.Join(jira[6:], " ")).To(Equal(readyMessage(t, jiraKey)))
	rejected := row(out, 0, "rejected")
	g.Expect(rejected[:5]).To(HaveExactElements("rejected", "jira", "False", "-", "-"))
	g.Expect(strings.Join(rejected[6:], " ")).To(Equal(readyMessage(t, rejectedKey)))
	g.Expect(out).NotTo(ContainSubstring("probe-only"), "team-b is not the kubeconfig's namespace")

	out, errOut, code = kubectl("get", "connections", "-n", otherTenant)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).NotTo(ContainSubstring("CONNECTORS"))
	g.Expect(row(out, 0, "probe-only")[:3]).To(HaveExactElements("probe-only", "jira", "True"))
	g.Expect(row(out, 0, "jira")).To(BeNil())

	out, errOut, code = kubectl("get", "conn", "-A")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(row(out, 0, "NAMESPACE")).NotTo(BeNil())
	g.Expect(row(out, 1, "probe-only")[:4]).To(HaveExactElements(otherTenant, "probe-only", "jira", "True"))
	g.Expect(row(out, 1, "rejected")[:4]).To(HaveExactElements(tenant, "rejected", "jira", "False"))

	out, _, code = kubectl("get", "connectors")
	g.Expect(code).To(Equal(0))
	g.Expect(out).NotTo(ContainSubstring("rejected"))
	g.Expect(row(out, 0, jiraConnector)).NotTo(BeNil())

	_, errOut, code = kubectl("get", "pods")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring(`not "pods"`))

	_, errOut, code = kubectl("get", "connections", "--as", "nobody")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(HavePrefix("Error: forbidden: you may not list connections in namespace team-a: "))
	g.Expect(strings.Count(errOut, "\n")).To(Equal(1), "one line")
}

// TestStatus: the tree shows the Connector, the Connection's conditions, its Secrets (key
// names only), each container's cursor and items, and the Connection's Events; never a
// Secret's value.
func TestStatus(t *testing.T) {
	g := NewWithT(t)
	waitFixtures(t)
	conn := get(t, jiraKey)

	out, errOut, code := kubectl("status", "conn/jira")
	g.Expect(code).To(Equal(0), errOut)
	t.Log("\n" + out)
	noSecrets(g, out+errOut)
	lines := strings.Split(out, "\n")
	g.Expect(lines[0]).To(HavePrefix("Connector " + jiraConnector + " (jira, cloud, " + fake.URL() + "): Ready=True: "))
	g.Expect(lines[1]).To(HavePrefix("└── Connection team-a/jira: Ready=True: " + readyMessage(t, jiraKey)))
	for _, want := range []string{
		"Ready=True Succeeded: ",
		"CredentialsValid=True Succeeded",
		"Synced=True Succeeded",
		"Identity: Plugin Bot (acct-plugin), probed ",
		"Secret (auth apiToken) team-a/creds: found, keys apiToken, email\n",
		"Sync to " + sink.URL() + ": 24 items delivered, last sync ",
		"Sink Secret team-a/sink-auth: found, keys authorization\n",
		"Container PRJA (Project A)\n",
		"Container PRJB (Project B)\n",
		"Items: 12, last sync ",
		"Last error: none",
		"Cursor: delivered everything updated before ",
		"── Events\n",
	} {
		g.Expect(out).To(ContainSubstring(want))
	}
	// The Events are the Connection's own (events.k8s.io), newest last.
	g.Expect(out).To(MatchRegexp(`── \S+ ago Normal Succeeded: ` + meta.FindStatusCondition(conn.Status.Conditions, v1alpha1.SyncedCondition).Message))

	// A stalled Connection says why on its conditions; its sync is off.
	out, errOut, code = kubectl("status", "connection/rejected")
	g.Expect(code).To(Equal(0), errOut)
	noSecrets(g, out+errOut)
	g.Expect(out).To(ContainSubstring("Connection team-a/rejected: Ready=False Stalled: "))
	g.Expect(out).To(ContainSubstring("CredentialsValid=False CredentialsRejected: "))
	g.Expect(out).To(ContainSubstring("Secret (auth apiToken) team-a/wrong: found, keys apiToken, email"))
	g.Expect(out).To(ContainSubstring("Sync: off (no spec.sync.sink)"))
	g.Expect(out).To(MatchRegexp(`── \S+ ago Warning CredentialsRejected: `))

	_, errOut, code = kubectl("status", "conn/missing")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(Equal("Error: connection team-a/missing not found\n"))

	_, errOut, code = kubectl("status", "pod/jira")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("is not a Connection"))
}

// TestSync: sync returns once the operator echoed the request, not before.
func TestSync(t *testing.T) {
	g := NewWithT(t)
	key := newSyncingConnection(t)

	out, errOut, code := kubectl("sync", "conn/"+key.Name)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("✔ request handled: Ready=True"))
	c := get(t, key)
	g.Expect(c.Annotations[v1alpha1.RequestedAtAnnotation]).NotTo(BeEmpty())
	g.Expect(c.Status.LastHandledReconcileAt).To(Equal(c.Annotations[v1alpha1.RequestedAtAnnotation]))

	// --wait=false only asks.
	out, errOut, code = kubectl("sync", "conn/"+key.Name, "--wait=false")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("► sync requested"))
	g.Expect(out).NotTo(ContainSubstring("waiting"))
	g.Expect(get(t, key).Annotations[v1alpha1.RequestedAtAnnotation]).NotTo(Equal(c.Annotations[v1alpha1.RequestedAtAnnotation]))

	_, errOut, code = kubectl("sync", "conn/missing")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(Equal("Error: connection team-a/missing not found\n"))
}

// TestResync: resync returns once the engine took the request, and the sink then receives
// every item again.
func TestResync(t *testing.T) {
	g := NewWithT(t)
	key := newSyncingConnection(t)
	source := "/namespaces/" + key.Namespace + "/connections/" + key.Name
	deliveries := func() int {
		n := 0
		for _, e := range sink.Events() {
			if e.Source == source && e.Type == "dev.unified.connectors.item.upserted" {
				n++
			}
		}
		return n
	}
	g.Eventually(deliveries, waitLong, 100*time.Millisecond).Should(Equal(projects * issuesPerProject))

	out, errOut, code := kubectl("resync", "conn/"+key.Name)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("✔ resync started"))
	c := get(t, key)
	g.Expect(c.Spec.Sync.ResyncRequest).NotTo(BeEmpty())
	g.Expect(c.Status.Sync.LastHandledResyncRequest).To(Equal(c.Spec.Sync.ResyncRequest))
	g.Eventually(deliveries, waitLong, 100*time.Millisecond).Should(Equal(2*projects*issuesPerProject),
		"the resync delivers every item once more")

	// Nothing to resync without a sink.
	_, errOut, code = kubectl("resync", "conn/rejected")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("has no spec.sync.sink"))
}

// TestSuspendResume: suspend and resume flip spec.sync.suspend and return once the
// Connection reads Suspended, then not.
func TestSuspendResume(t *testing.T) {
	g := NewWithT(t)
	key := newSyncingConnection(t)

	out, errOut, code := kubectl("suspend", "conn/"+key.Name)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("spec.sync.suspend=true"))
	g.Expect(out).To(ContainSubstring("✔ Synced=False Suspended: "))
	c := get(t, key)
	g.Expect(c.Spec.Sync.Suspend).To(BeTrue())
	g.Expect(conditionReason(t, key, v1alpha1.SyncedCondition)).To(Equal("False/" + v1alpha1.SuspendedReason))
	out, _, _ = kubectl("get", "connections")
	g.Expect(row(out, 0, key.Name)[5]).To(Equal("True"), "SUSPENDED")

	out, errOut, code = kubectl("resume", "conn/"+key.Name)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("spec.sync.suspend=false"))
	g.Expect(get(t, key).Spec.Sync.Suspend).To(BeFalse())
	g.Expect(conditionReason(t, key, v1alpha1.SyncedCondition)).NotTo(Equal("False/" + v1alpha1.SuspendedReason))
	waitSynced(t, key)

	_, errOut, code = kubectl("suspend", "conn/rejected")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("has no spec.sync"))
}

// TestBinary runs the built command once, so that the real flag wiring (--kubeconfig,
// --context, the kubeconfig's namespace) and the exit codes are covered.
func TestBinary(t *testing.T) {
	g := NewWithT(t)
	waitFixtures(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	bin := filepath.Join(t.TempDir(), "kubectl-connectors")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-connectors")
	build.Dir = root
	outb, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(outb))

	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			g.Expect(err).NotTo(HaveOccurred())
		}
		return out.String(), errOut.String(), code
	}
	out, errOut, code := run("get", "connections", "--kubeconfig", kubeconfig, "--context", "team-b")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(row(out, 0, "probe-only")[:3]).To(HaveExactElements("probe-only", "jira", "True"))
	g.Expect(row(out, 0, "jira")).To(BeNil())

	out, errOut, code = run("status", "conn/jira", "--kubeconfig", kubeconfig)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("└── Connection team-a/jira: Ready=True"))
	noSecrets(g, out+errOut)

	_, errOut, code = run("--kubeconfig", kubeconfig, "status", "conn/missing", "-n", otherTenant)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(Equal("Error: connection team-b/missing not found\n"))
}

// TestTenantView: a tenant who may read Connections in its namespace, and nothing else,
// still gets its table and its tree; what it may not read is said where it would be.
func TestTenantView(t *testing.T) {
	g := NewWithT(t)
	waitFixtures(t)
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "connection-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connections"},
			Verbs: []string{"get", "list"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "connection-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "tenant-user"}}}
	g.Expect(k8s.Create(ctx, role)).To(Succeed())
	g.Expect(k8s.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, binding); _ = k8s.Delete(ctx, role) })

	// The authorizer learns of RBAC objects through informers: wait for it.
	var out, errOut string
	var code int
	g.Eventually(func() int {
		out, errOut, code = kubectl("get", "--as", "tenant-user")
		return code
	}, waitLong, 100*time.Millisecond).Should(Equal(0))
	g.Expect(errOut).To(HavePrefix("Connectors: forbidden: you may not list connectors: "))
	g.Expect(out).NotTo(ContainSubstring(jiraConnector))
	g.Expect(row(out, 0, "jira")[:3]).To(HaveExactElements("jira", "jira", "True"))

	out, errOut, code = kubectl("status", "conn/jira", "--as", "tenant-user")
	g.Expect(code).To(Equal(0), errOut)
	noSecrets(g, out+errOut)
	g.Expect(out).To(HavePrefix("Connector demo-jira: forbidden: you may not get connector demo-jira: "))
	g.Expect(out).To(ContainSubstring("Secret (auth apiToken) team-a/creds: forbidden: you may not get secret team-a/creds: "))
	g.Expect(out).To(ContainSubstring("Container PRJA (Project A)"))
	g.Expect(out).To(MatchRegexp(`Events\n\s+└── forbidden: you may not list events in namespace team-a: `))

	_, errOut, code = kubectl("sync", "conn/jira", "--as", "tenant-user")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(HavePrefix("Error: forbidden: you may not patch connection team-a/jira: "))
}

// TestStatusSyncError: a sink that refuses the batches shows as the sync's last error.
func TestStatusSyncError(t *testing.T) {
	g := NewWithT(t)
	refusing := sinktest.NewServer()
	t.Cleanup(refusing.Close)
	refusing.Fail(sinktest.Failure{Status: http.StatusBadRequest})
	c := syncingConnection(tenant, "refused-"+rand.String(5))
	c.Spec.Sync.Sink = &v1alpha1.SinkSpec{URL: v1alpha1.URL(refusing.URL()), BatchSize: 5}
	g.Expect(k8s.Create(context.Background(), c)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), c) })
	key := client.ObjectKeyFromObject(c)
	g.Eventually(func() string { return conditionReason(t, key, v1alpha1.SyncedCondition) }, waitLong, 100*time.Millisecond).
		Should(Equal("False/" + v1alpha1.SinkRejectedReason))
	synced := meta.FindStatusCondition(get(t, key).Status.Conditions, v1alpha1.SyncedCondition)

	out, errOut, code := kubectl("status", "conn/"+key.Name)
	g.Expect(code).To(Equal(0), errOut)
	t.Log("\n" + out)
	g.Expect(out).To(ContainSubstring("Connection team-a/" + key.Name + ": Ready=False Stalled: "))
	g.Expect(out).To(ContainSubstring("Synced=False SinkRejected: "))
	g.Expect(out).To(ContainSubstring("Last error: SinkRejected: " + synced.Message + "\n"))

	out, _, _ = kubectl("get", "connections")
	g.Expect(row(out, 0, key.Name)[2]).To(Equal("False"))
}
