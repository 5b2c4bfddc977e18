// Package ha_test proves the operator's high availability with the real binary: two
// manager processes (built from main.go) run against one envtest API server as the
// operator's ServiceAccount (a kubeconfig that impersonates it, so only the shipped RBAC
// applies), with leader election on short lease flags. The leader is killed with SIGKILL
// in the middle of a backfill; the follower must take the Lease within the lease
// duration, continue from the persisted cursor, and finish with every item's newest
// version in the sink and repeats bounded by one persistence window. Both replicas'
// HTTP APIs are polled throughout: the follower serves reads and search while it does not
// lead, and the survivor after the kill.
package ha_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	tenant  = "tenant"
	usersNS = "api-users"
	issues  = 3000
	// killAt is how many items the sink holds when the leader dies: some, not all.
	killAt = 1200
	// Vendor latency per request: 30 pages of 100 issues take about 8 s, so the kill
	// lands mid-backfill.
	vendorLatency = 250 * time.Millisecond
	batchSize     = 50

	// Leader election and persistence flags of both replicas.
	leaseDuration = 6 * time.Second
	renewDeadline = 4 * time.Second
	retryPeriod   = time.Second
	persistEvery  = 5 * time.Second
	persistItems  = 500

	// takeoverLimit is how long the follower may take to lead after the kill. It takes
	// the Lease at most leaseDuration + retryPeriod (7 s) after the leader's last renewal;
	// the check allows three times that for a loaded machine.
	takeoverLimit = 3 * (leaseDuration + retryPeriod)
	// searchWord is in one issue, so a search finds something.
	searchWord = "failoverprobe"
)

func TestLeaderKilledMidBackfill(t *testing.T) {
	g := NewWithT(t)
	started := time.Now()
	env, err := testenv.Start(testenv.Options{Scheme: manager.Scheme, Namespaces: []string{tenant, usersNS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	k8s := env.Client
	bin := buildManager(t, env.Root)
	kubeconfig := writeKubeconfig(t, env)

	// The vendor: 3,000 issues behind a slow API. The sink counts deliveries.
	acct := atlassiantest.Account{ID: "acct-ha", DisplayName: "HA Bot", Email: "bot@example.com", APIToken: "token-ha-0123456789abcdef"}
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(acct)
	fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: issues - 1, Seed: 9, Start: time.Now().Add(-30 * 24 * time.Hour)})
	fake.CreateIssue("PRJA", "The "+searchWord+" issue", "Found on any replica.", time.Now().Add(-29*24*time.Hour))
	fake.SetFault(atlassiantest.Fault{Latency: vendorLatency})
	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	must(t, k8s.Create(ctx, &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Name: "jira"},
		Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: v1alpha1.EndpointURL(fake.URL()),
			RateLimit: v1alpha1.RateLimitSpec{RequestsPerSecond: 1000, Burst: 1000}},
	}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "creds"},
		StringData: map[string]string{"email": acct.Email, "apiToken": acct.APIToken}}))
	token := reader(t, g, env)

	replicas := []*replica{startReplica(t, bin, kubeconfig, env.Namespace, 0), startReplica(t, bin, kubeconfig, env.Namespace, 1)}
	for _, r := range replicas {
		g.Eventually(r.healthy, time.Minute, 100*time.Millisecond).Should(BeTrue(), "replica %d healthy", r.index)
	}
	var leader *replica
	g.Eventually(func() int {
		leaders := 0
		for _, r := range replicas {
			if r.leads() {
				leader, leaders = r, leaders+1
			}
		}
		return leaders
	}, time.Minute, 100*time.Millisecond).Should(Equal(1), "exactly one leader")
	follower := replicas[1-leader.index]
	holderBefore := leaseHolder(t, k8s, env.Namespace)
	t.Logf("replica %d leads (Lease holder %s); setup took %s", leader.index, holderBefore, time.Since(started).Round(time.Millisecond))

	conn := &v1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "jira"},
		Spec: v1alpha1.ConnectionSpec{
			ConnectorRef: v1alpha1.ConnectorReference{Name: "jira"},
			Auth:         v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodAPIToken, SecretRef: v1alpha1.SecretReference{Name: "creds"}},
			Sync: &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: time.Hour},
				Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sink.URL()), BatchSize: batchSize}},
		},
	}
	must(t, k8s.Create(ctx, conn))
	key := client.ObjectKeyFromObject(conn)
	get := func() *v1alpha1.Connection {
		var c v1alpha1.Connection
		must(t, k8s.Get(ctx, key, &c))
		return &c
	}
	// The API serves a Connection once its credential is judged; poll from then on.
	g.Eventually(func() bool {
		return meta.IsStatusConditionTrue(get().Status.Conditions, v1alpha1.CredentialsValidCondition)
	}, time.Minute, 50*time.Millisecond).Should(BeTrue())
	poll := startPolling(replicas, token)

	// Mid-backfill: some issues the sink already has change, so their newest versions
	// must come from the survivor; then the leader dies without a word.
	g.Eventually(func() int { return len(sink.Items()) }, time.Minute, 10*time.Millisecond).Should(BeNumerically(">=", killAt/2))
	var changed []string
	for _, it := range sink.Items()[:10] {
		fake.UpdateIssue(it.Key, time.Now())
		changed = append(changed, it.Key)
	}
	g.Eventually(func() int { return len(sink.Items()) }, time.Minute, 10*time.Millisecond).Should(BeNumerically(">=", killAt))
	poll.phase(leader.index)
	leader.kill(t)
	killed := time.Now()
	atKill := len(sink.Items())
	if atKill >= issues {
		t.Fatalf("the backfill finished (%d items) before the kill: slow the vendor", atKill)
	}
	// What the follower must start from: the cursor the dead leader persisted last.
	persisted := get().Status.Sync
	g.Expect(persisted).NotTo(BeNil())
	g.Expect(persisted.Containers).To(HaveLen(1))
	cur, err := syncer.ParseCursor(persisted.Containers[0].Cursor)
	must(t, err)
	unpersisted := 0
	for _, it := range sink.Items() {
		if !cur.Covers(it.ID, it.UpdatedAt) {
			unpersisted++
		}
	}

	// The follower takes the Lease.
	g.Eventually(follower.leads, takeoverLimit, 50*time.Millisecond).Should(BeTrue(),
		"the follower must lead within %s of the kill (lease %s + retry %s, three times over)", takeoverLimit, leaseDuration, retryPeriod)
	takeover := time.Since(killed)
	g.Expect(leaseHolder(t, k8s, env.Namespace)).NotTo(Equal(holderBefore))
	atTakeover := len(sink.Items())

	// It continues from the cursor and finishes: every issue's newest version, once
	// more at most for what the dead leader had not persisted.
	g.Eventually(func() string {
		c := meta.FindStatusCondition(get().Status.Conditions, v1alpha1.SyncedCondition)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}, 2*time.Minute, 100*time.Millisecond).Should(Equal("True/Succeeded"))
	newest := map[string]time.Time{}
	for _, it := range sink.Items() {
		if it.UpdatedAt.After(newest[it.Key]) {
			newest[it.Key] = it.UpdatedAt
		}
	}
	keys := fake.JiraIssueKeys("PRJA")
	g.Expect(keys).To(HaveLen(issues))
	for _, k := range keys {
		info, _ := fake.JiraIssue(k)
		g.Expect(newest[k].Equal(info.Updated)).To(BeTrue(), "%s: the sink's newest version is %s, the vendor's %s", k, newest[k], info.Updated)
	}
	// The survivor started from the dead leader's cursor: it resent nothing it covers.
	resent := 0
	for _, it := range sink.Items()[atTakeover:] {
		if cur.Covers(it.ID, it.UpdatedAt) {
			resent++
		}
	}
	g.Expect(resent).To(BeZero(), "the survivor resent items the persisted cursor covers")
	rep := sink.Check()
	// Every persistence is due after persistItems acknowledged items, counted in whole
	// batches, and the batch in flight may have reached the sink unacknowledged.
	bound := (persistItems+batchSize-1)/batchSize*batchSize + batchSize
	g.Expect(unpersisted).To(BeNumerically("<=", bound), "the dead leader's unpersisted window")
	g.Expect(rep.Duplicates).To(BeNumerically("<=", unpersisted), "repeats beyond what the persisted cursor did not cover")
	g.Expect(rep.Distinct).To(Equal(issues))
	g.Expect(rep.Deliveries).To(Equal(issues+len(changed)+rep.Duplicates), "every issue once, the changed ones twice, plus the repeats")

	// The HTTP API answered on both replicas: the follower while it did not lead, and
	// the survivor after the kill; neither failed a request while it ran.
	poll.stop()
	before, after := poll.counts(follower.index, 0), poll.counts(follower.index, 1)
	g.Expect(before.reads).To(BeNumerically(">", 0), "the follower served reads while not leading")
	g.Expect(before.searches).To(BeNumerically(">", 0), "the follower served searches (source ok) while not leading")
	g.Expect(after.reads).To(BeNumerically(">", 0), "the survivor served reads after the kill")
	g.Expect(after.searches).To(BeNumerically(">", 0), "the survivor served searches after the kill")
	g.Expect(append(before.failures, after.failures...)).To(BeEmpty(), "the follower/survivor failed API requests")
	g.Expect(poll.counts(leader.index, 0).failures).To(BeEmpty(), "the leader failed API requests before the kill")

	for _, r := range replicas {
		logs := r.logs()
		g.Expect(logs).NotTo(ContainSubstring("forbidden"), "replica %d was refused by the API server (config/rbac)", r.index)
		g.Expect(logs).NotTo(ContainSubstring(acct.APIToken), "replica %d logged the credential", r.index)
	}
	t.Logf("killed the leader at %d/%d items (%d unpersisted, bound %d); follower led after %s (limit %s); "+
		"%d items at takeover; %d items delivered twice; API on the survivor: %d reads and %d searches while following, %d and %d after; test took %s",
		atKill, issues, unpersisted, bound, takeover.Round(time.Millisecond), takeoverLimit, atTakeover, rep.Duplicates,
		before.reads, before.searches, after.reads, after.searches, time.Since(started).Round(time.Millisecond))
}

// buildManager builds the real manager binary once for the test.
func buildManager(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "manager")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/unified-connectors/connector-operator")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}
	return bin
}

// writeKubeconfig writes the envtest admin's credentials impersonating the operator's
// ServiceAccount, as testenv's ManagerConfig does: the replicas hold only the shipped RBAC.
func writeKubeconfig(t *testing.T, env *testenv.Environment) string {
	t.Helper()
	c := env.ManagerConfig
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["operator"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken,
		Impersonate: c.Impersonate.UserName, ImpersonateGroups: c.Impersonate.Groups,
	}
	kc.Contexts["operator"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "operator"}
	kc.CurrentContext = "operator"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, clientcmd.WriteToFile(*kc, path))
	if c.Impersonate.UserName != env.Username() {
		t.Fatalf("ManagerConfig impersonates %q, not the operator's ServiceAccount", c.Impersonate.UserName)
	}
	return path
}

// replica is one manager process.
type replica struct {
	index                 int
	cmd                   *exec.Cmd
	api, metrics, healthz string // http://127.0.0.1:port
	out                   *lockedBuffer
}

func startReplica(t *testing.T, bin, kubeconfig, namespace string, index int) *replica {
	t.Helper()
	r := &replica{index: index, out: &lockedBuffer{}}
	apiAddr, metricsAddr, healthAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	r.api, r.metrics, r.healthz = "http://"+apiAddr, "http://"+metricsAddr, "http://"+healthAddr
	r.cmd = exec.Command(bin,
		"--kubeconfig="+kubeconfig,
		"--namespace="+namespace,
		"--leader-elect=true",
		"--leader-election-lease-duration="+leaseDuration.String(),
		"--leader-election-renew-deadline="+renewDeadline.String(),
		"--leader-election-retry-period="+retryPeriod.String(),
		"--sync-persist-interval="+persistEvery.String(),
		"--sync-persist-items="+strconv.Itoa(persistItems),
		"--allow-insecure-vendor-urls",
		"--api-bind-address="+apiAddr,
		"--metrics-bind-address="+metricsAddr,
		"--health-probe-bind-address="+healthAddr,
		"--log-format=json",
	)
	r.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	must(t, r.cmd.Start())
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = r.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = r.cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("replica %d log (tail):\n%s", r.index, tail(r.logs(), 40))
		}
	})
	return r
}

func (r *replica) kill(t *testing.T) {
	t.Helper()
	must(t, r.cmd.Process.Signal(syscall.SIGKILL))
	_ = r.cmd.Wait()
}

func (r *replica) logs() string { return r.out.String() }

// healthy: the replica's health endpoint answers, and so does its HTTP API, which
// starts only once the manager's caches have synced (later than /healthz on a busy
// machine: polling before that counted refused connections as failed requests).
func (r *replica) healthy() bool {
	for _, u := range []string{r.healthz + "/healthz", r.api + "/openapi.json"} {
		resp, err := http.Get(u)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

// leads reads the replica's leader gauge from its metrics endpoint.
func (r *replica) leads() bool {
	resp, err := http.Get(r.metrics + "/metrics")
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	want := `leader_election_master_status{name="` + manager.DefaultLeaderElectionID + `"} 1`
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sc.Text() == want {
			return true
		}
	}
	return false
}

func leaseHolder(t *testing.T, k8s client.Client, ns string) string {
	t.Helper()
	var l coordinationv1.Lease
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: manager.DefaultLeaderElectionID}, &l))
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// poller GETs a Connection and a search from every replica, over and over.
type poller struct {
	mu      sync.Mutex
	current int // 0 before the kill, 1 after
	dead    int // the killed replica's index, -1 before
	results map[[2]int]*tally
	done    chan struct{}
	wg      sync.WaitGroup
}

type tally struct {
	reads, searches int
	failures        []string
}

func startPolling(replicas []*replica, token string) *poller {
	p := &poller{dead: -1, results: map[[2]int]*tally{}, done: make(chan struct{})}
	for _, r := range replicas {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case <-p.done:
					return
				case <-time.After(200 * time.Millisecond):
				}
				p.mu.Lock()
				phase, dead := p.current, p.dead == r.index
				p.mu.Unlock()
				if dead {
					continue
				}
				read := apiGet(r.api, token, "/api/v1/namespaces/"+tenant+"/connections/jira")
				search := apiGet(r.api, token, "/api/v1/search?q="+searchWord+"&namespaces="+tenant)
				p.mu.Lock()
				if p.dead == r.index { // killed meanwhile: its answers do not count
					p.mu.Unlock()
					continue
				}
				t := p.tally(r.index, phase)
				if read.err != "" {
					t.failures = append(t.failures, "read: "+read.err)
				} else if read.data["name"] == "jira" {
					t.reads++
				}
				if search.err != "" {
					t.failures = append(t.failures, "search: "+search.err)
				} else if searchOK(search.data) {
					t.searches++
				}
				p.mu.Unlock()
			}
		}()
	}
	return p
}

func (p *poller) tally(index, phase int) *tally {
	k := [2]int{index, phase}
	if p.results[k] == nil {
		p.results[k] = &tally{}
	}
	return p.results[k]
}

// phase marks the kill of replica dead: later answers count as "after".
func (p *poller) phase(dead int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current, p.dead = 1, dead
}

func (p *poller) stop() { close(p.done); p.wg.Wait() }

func (p *poller) counts(index, phase int) tally {
	p.mu.Lock()
	defer p.mu.Unlock()
	return *p.tally(index, phase)
}

// searchOK: the search found the probe issue and its one source answered ok.
func searchOK(data map[string]any) bool {
	sources, _ := data["sources"].([]any)
	items, _ := data["items"].([]any)
	if len(sources) != 1 || len(items) == 0 {
		return false
	}
	s, _ := sources[0].(map[string]any)
	return s["status"] == "ok"
}

type apiAnswer struct {
	data map[string]any
	err  string
}

var apiClient = &http.Client{Timeout: 20 * time.Second}

func apiGet(base, token, path string) apiAnswer {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return apiAnswer{err: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := apiClient.Do(req)
	if err != nil {
		return apiAnswer{err: err.Error()}
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string         `json:"status"`
		Data   map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil || resp.StatusCode != http.StatusOK || env.Status != "ok" {
		return apiAnswer{err: fmt.Sprintf("%s: %d %s", path, resp.StatusCode, b)}
	}
	return apiAnswer{data: env.Data}
}

// reader is the token of a ServiceAccount that may get, list and read the data of the
// tenant's Connections.
func reader(t *testing.T, _ Gomega, env *testenv.Environment) string {
	t.Helper()
	token, err := env.Caller(context.Background(), usersNS, "reader", map[string][]rbacv1.PolicyRule{tenant: {
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connections"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connections/data"}, Verbs: []string{"get"}},
	}})
	must(t, err)
	return token
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	must(t, ln.Close())
	return addr
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
