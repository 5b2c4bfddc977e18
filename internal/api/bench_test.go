package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// Benchmarks (make bench): they need the envtest control plane, like the tests, and
// share one fixture: 100 Ready Connections in 4 namespaces on a fake Jira site that
// answers after vendorLatency, plus one Connection whose site hangs.

const vendorLatency = 50 * time.Millisecond

// keep is a testing.TB whose cleanups never run: the benchmark fixture outlives the
// benchmark that builds it (the process ends when the benchmarks do).
type keep struct{ testing.TB }

func (keep) Cleanup(func()) {}

type benchFixture struct {
	slow, fast, hung *site
	namespaces       []string // the 4 namespaces of the 100
	hungNamespace    string
	reader           user
	listers          []user
	item             client.ObjectKey // a Connection on the fast site
	slowItem         client.ObjectKey // a Connection on the slow site
}

var (
	benchOnce sync.Once
	bench     *benchFixture
)

func benchEnv(b *testing.B) (*suite, *benchFixture) {
	s := testEnv(b)
	benchOnce.Do(func() {
		t := keep{b}
		f := &benchFixture{}
		f.slow, f.fast, f.hung = s.newSite(t, v1alpha1.ConnectorTypeJira), s.newSite(t, v1alpha1.ConnectorTypeJira), s.newSite(t, v1alpha1.ConnectorTypeJira)
		base := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
		for _, st := range []*site{f.slow, f.fast, f.hung} {
			for i := range 30 {
				st.fake.CreateIssue("PRJA", fmt.Sprintf("Benchmark issue %d", i), "Text of a benchmark issue about rollout latency.", base.Add(time.Duration(i)*time.Minute))
			}
		}
		var keys []client.ObjectKey
		for n := range 4 {
			ns := s.newNamespace(t, fmt.Sprintf("bench-%d", n))
			f.namespaces = append(f.namespaces, ns)
			for i := range 25 {
				keys = append(keys, s.newConnection(t, ns, fmt.Sprintf("jira-%02d", i), f.slow))
			}
		}
		f.slowItem = keys[0]
		f.hungNamespace = s.newNamespace(t, "bench-hung")
		keys = append(keys, s.newConnection(t, f.hungNamespace, "jira-hung", f.hung))
		f.item = s.newConnection(t, s.newNamespace(t, "bench-item"), "jira-fast", f.fast)
		keys = append(keys, f.item)
		s.waitReady(t, keys...)
		f.slow.fake.SetFault(atlassiantest.Fault{Latency: vendorLatency})
		f.hung.fake.SetFault(atlassiantest.Fault{Hang: true})

		f.reader = s.newUser(t, "bench-reader")
		s.grantCluster(t, f.reader, rule("connections", "get", "list"), rule("connections/data", "get"))
		// Many distinct callers of the connections list, as a busy cluster has.
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.namespaces[0], Name: "bench-listers"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "bench-listers"},
		}
		for range 50 {
			u := s.newUser(t, "bench-lister")
			f.listers = append(f.listers, u)
			binding.Subjects = append(binding.Subjects, u.subject())
		}
		must(t, s.k8s.Create(context.Background(), &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.namespaces[0], Name: "bench-listers"},
			Rules:      []rbacv1.PolicyRule{rule("connections", "list")},
		}))
		must(t, s.k8s.Create(context.Background(), binding))
		for _, u := range f.listers {
			s.waitAllowed(t, u, f.namespaces[0], rule("connections", "list"))
		}
		bench = f
	})
	if bench == nil {
		b.Fatal("the benchmark fixture failed")
	}
	return s, bench
}

// get sends an API GET and returns the status and body, for benchmarks (no checks).
func get(b *testing.B, url, token string) (int, []byte) {
	hr, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(hr)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, body
}

// percentiles reports p50 and p99 of ds in milliseconds.
func percentiles(b *testing.B, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(p float64) float64 {
		i := int(float64(len(ds)-1) * p)
		return float64(ds[i].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50_ms")
	b.ReportMetric(at(0.99), "p99_ms")
}

func benchSearch(b *testing.B, namespaces []string, extra string, wantSources int) {
	s, f := benchEnv(b)
	q := s.baseURL + "/api/v1/search?q=benchmark&namespaces=" + url.QueryEscape(join(namespaces)) + extra
	check := func() {
		status, body := get(b, q, f.reader.token)
		if status != http.StatusOK {
			b.Fatalf("search: %d %s", status, body)
		}
	}
	for range 3 { // warm the auth caches and the vendor connections
		check()
	}
	ds := make([]time.Duration, 0, b.N)
	okSources := wantSources
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		status, body := get(b, q, f.reader.token)
		ds = append(ds, time.Since(start))
		if status != http.StatusOK {
			b.Fatalf("search: %d %s", status, body)
		}
		var answer struct {
			Data struct {
				Sources []struct{ Status string }
			}
		}
		if err := json.Unmarshal(body, &answer); err != nil || len(answer.Data.Sources) != wantSources {
			b.Fatalf("search answered %d sources, want %d (%v)", len(answer.Data.Sources), wantSources, err)
		}
		n := 0
		for _, src := range answer.Data.Sources {
			if src.Status == "ok" {
				n++
			}
		}
		okSources = min(okSources, n)
	}
	b.StopTimer()
	percentiles(b, ds)
	b.ReportMetric(float64(wantSources), "sources")
	b.ReportMetric(float64(okSources), "min_ok_sources")
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// BenchmarkSearchFanOut100: one search over 100 Connections whose vendor answers in
// 50 ms, with pages of 20 results (each source's 20 issues read, decoded and ranked:
// 2000 per search) and of 1 (the fan-out itself). Target: p99 within 30 ms of the
// vendor's latency.
func BenchmarkSearchFanOut100(b *testing.B) {
	for _, limit := range []int{20, 1} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			_, f := benchEnv(b)
			benchSearch(b, f.namespaces, fmt.Sprintf("&limit=%d", limit), 100)
			b.ReportMetric(float64(vendorLatency.Milliseconds()), "vendor_ms")
		})
	}
}

// BenchmarkSearchFanOut100OneHung: the same 100 plus one Connection whose vendor never
// answers, with a 250 ms per-source deadline (timeout=): the answer comes at the
// deadline, with the 100 sources' results.
func BenchmarkSearchFanOut100OneHung(b *testing.B) {
	_, f := benchEnv(b)
	benchSearch(b, append(append([]string{}, f.namespaces...), f.hungNamespace), "&limit=20&timeout=250ms", 101)
	b.ReportMetric(250, "deadline_ms")
}

// BenchmarkItemReadOverhead: reading one issue through the API against calling the fake
// vendor directly, alternating in the same run, with the vendor answering at once and
// after 50 ms.
func BenchmarkItemReadOverhead(b *testing.B) {
	for _, c := range []struct {
		name string
		key  func(*benchFixture) client.ObjectKey
		site func(*benchFixture) *site
	}{
		{"vendor_latency_0ms", func(f *benchFixture) client.ObjectKey { return f.item }, func(f *benchFixture) *site { return f.fast }},
		{"vendor_latency_50ms", func(f *benchFixture) client.ObjectKey { return f.slowItem }, func(f *benchFixture) *site { return f.slow }},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, f := benchEnv(b)
			key, st := c.key(f), c.site(f)
			apiURL := s.baseURL + connPath(key.Namespace, key.Name, "items", "PRJA-1")
			vendorURL := st.fake.URL() + "/rest/api/3/issue/PRJA-1?fields=summary,description,issuetype,project,created,updated,reporter,creator"
			direct := func() {
				hr, _ := http.NewRequest(http.MethodGet, vendorURL, nil)
				hr.SetBasicAuth(st.account.Email, st.account.APIToken)
				hr.Header.Set("Accept", "application/json")
				resp, err := httpClient.Do(hr)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("direct: %d", resp.StatusCode)
				}
			}
			viaAPI := func() {
				if status, body := get(b, apiURL, f.reader.token); status != http.StatusOK {
					b.Fatalf("api: %d %s", status, body)
				}
			}
			for range 3 {
				direct()
				viaAPI()
			}
			var sumDirect, sumAPI time.Duration
			apiDs := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				direct()
				t1 := time.Now()
				viaAPI()
				t2 := time.Now()
				sumDirect += t1.Sub(t0)
				sumAPI += t2.Sub(t1)
				apiDs = append(apiDs, t2.Sub(t1))
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(sumDirect.Microseconds())/n/1000, "direct_ms")
			b.ReportMetric(float64(sumAPI.Microseconds())/n/1000, "api_ms")
			b.ReportMetric(float64((sumAPI-sumDirect).Microseconds())/n/1000, "overhead_ms")
			b.ReportMetric(100*float64(sumAPI-sumDirect)/float64(sumDirect), "overhead_pct")
			percentiles(b, apiDs)
		})
	}
}

// BenchmarkConnectionsListRPS: 50 distinct callers listing a namespace's 25 Connections
// from the cache at once (each with its own token, so TokenReview and SubjectAccessReview
// caches hold 50 entries and refresh every 10 s).
func BenchmarkConnectionsListRPS(b *testing.B) {
	s, f := benchEnv(b)
	u := s.baseURL + "/api/v1/namespaces/" + f.namespaces[0] + "/connections"
	for _, l := range f.listers {
		if status, body := get(b, u, l.token); status != http.StatusOK {
			b.Fatalf("list: %d %s", status, body)
		}
	}
	var next atomic.Int64
	var failed atomic.Int64
	b.SetParallelism(25) // 25 × GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		l := f.listers[int(next.Add(1))%len(f.listers)]
		for pb.Next() {
			if status, _ := get(b, u, l.token); status != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d list requests failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rps")
}
