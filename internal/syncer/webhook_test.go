package syncer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/syncer"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

// The receiver's tests drive WebhookHandler over HTTP against the real API server, as
// the operator's ServiceAccount (so its RBAC is the one shipped), with its Client and
// Reader wrapped to count what each request reads and writes.

// countingReader counts the Gets reaching the API server through the handler's Reader
// (the live Secret read); with gate set, a Secret Get waits for it to close.
type countingReader struct {
	client.Reader
	gets, secretGets atomic.Int32
	gate             chan struct{}
	entered          chan struct{}
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets.Add(1)
	if _, ok := obj.(*corev1.Secret); ok {
		r.secretGets.Add(1)
		if r.gate != nil {
			r.entered <- struct{}{}
			<-r.gate
		}
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// countingClient counts the handler's Connection reads and its successful patches.
type countingClient struct {
	client.Client
	gets, patches atomic.Int32
}

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets.Add(1)
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	err := c.Client.Patch(ctx, obj, patch, opts...)
	if err == nil {
		c.patches.Add(1)
	}
	return err
}

// hookSite is a site with a webhook Secret and a Connection receiving webhooks; the
// handlers it serves share one counting Client and Reader.
type hookSite struct {
	*site
	secret []byte
	key    client.ObjectKey
	client *countingClient
	reader *countingReader
}

func newHookSite(t *testing.T) *hookSite {
	t.Helper()
	s := newSite(t, "UTC")
	h := &hookSite{site: s, secret: []byte("webhook-secret-" + rand.String(12)),
		client: &countingClient{Client: operator}, reader: &countingReader{Reader: operator}}
	must(t, k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "hook"},
		Data: map[string][]byte{"secret": h.secret}}))
	h.key = s.connection(s.jira, withWebhook("hook"))
	return h
}

func withWebhook(secret string) func(*v1alpha1.ConnectionSpec) {
	return func(spec *v1alpha1.ConnectionSpec) {
		spec.Webhook = &v1alpha1.WebhookSpec{SecretRef: v1alpha1.SecretReference{Name: secret}}
	}
}

// replica serves a new WebhookHandler (a replica with its own memory) and returns its URL.
func (h *hookSite) replica(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/v1/namespaces/{ns}/connections/{name}", &syncer.WebhookHandler{Client: h.client, Reader: h.reader})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func hookPath(key client.ObjectKey) string {
	return "/webhooks/v1/namespaces/" + key.Namespace + "/connections/" + key.Name
}

// issueEvent is a Jira issue event about project, at the given time; n makes bodies
// distinct.
func issueEvent(project string, at time.Time, n int) []byte {
	return []byte(fmt.Sprintf(`{"webhookEvent":"jira:issue_updated","timestamp":%d,"issue":{"id":"%d","key":"%s-%d","fields":{"project":{"key":%q}}}}`,
		at.UnixMilli(), 10000+n, project, n, project))
}

type hookAnswer struct {
	status int
	header http.Header
	body   []byte
}

// data decodes an ok envelope's data.
func (a hookAnswer) data(t testing.TB) map[string]any {
	t.Helper()
	var env struct {
		Status string         `json:"status"`
		Data   map[string]any `json:"data"`
	}
	if err := json.Unmarshal(a.body, &env); err != nil || env.Status != "ok" {
		t.Fatalf("not an ok envelope (%d): %s", a.status, a.body)
	}
	return env.Data
}

// errorBody is an error envelope without its requestId, which differs per request.
func (a hookAnswer) errorBody(t testing.TB) map[string]any {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(a.body, &env); err != nil {
		t.Fatalf("not JSON (%d): %s", a.status, a.body)
	}
	delete(env, "requestId")
	return env
}

func postHook(t testing.TB, url string, body []byte, signature string) hookAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("X-Hub-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return hookAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// postAccepted posts until the answer is not a 429 (the receiver's rate limit), waiting
// as the vendor would.
func postAccepted(t testing.TB, url string, body []byte, signature string) hookAnswer {
	t.Helper()
	for {
		a := postHook(t, url, body, signature)
		if a.status != http.StatusTooManyRequests {
			return a
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func webhookAnnotations(c *v1alpha1.Connection) map[string]string {
	out := map[string]string{}
	for k, v := range c.Annotations {
		if name, ok := strings.CutPrefix(k, syncer.WebhookAnnotationPrefix); ok {
			out[name] = v
		}
	}
	return out
}

// TestWebhookNoExistenceOracle (item 12a): an unknown Connection, one without a webhook,
// one whose webhook Secret or key is missing, and a wrong signature all get the very same
// answer, so a caller who cannot sign cannot tell which Connections exist.
func TestWebhookNoExistenceOracle(t *testing.T) {
	g := NewWithT(t)
	h := newHookSite(t)
	noWebhook := h.connection(h.jira, nil)
	noSecret := h.connection(h.jira, withWebhook("absent"))
	must(t, k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "keyless"},
		Data: map[string][]byte{"other": h.secret}}))
	noKey := h.connection(h.jira, withWebhook("keyless"))
	url := h.replica(t)

	body := issueEvent("PRJA", time.Now(), 1)
	good := syncer.Sign(h.secret, body)
	reference := postHook(t, url+hookPath(h.key), body, syncer.Sign([]byte("wrong"), body))
	g.Expect(reference.status).To(Equal(http.StatusUnauthorized))
	g.Expect(reference.errorBody(t)).To(HaveKeyWithValue("code", "UNAUTHENTICATED"))

	for name, path := range map[string]string{
		"unknown Connection":    hookPath(client.ObjectKey{Namespace: h.ns, Name: "nope"}),
		"unknown namespace":     hookPath(client.ObjectKey{Namespace: "nope-" + rand.String(6), Name: h.key.Name}),
		"invalid name":          hookPath(client.ObjectKey{Namespace: h.ns, Name: "Not_A_Name"}),
		"no webhook":            hookPath(noWebhook),
		"webhook Secret absent": hookPath(noSecret),
		"no key secret":         hookPath(noKey),
	} {
		a := postHook(t, url+path, body, good)
		g.Expect(a.status).To(Equal(reference.status), name)
		g.Expect(a.errorBody(t)).To(Equal(reference.errorBody(t)), name)
		g.Expect(a.header.Get("Content-Type")).To(Equal(reference.header.Get("Content-Type")), name)
		g.Expect(a.header.Get("Retry-After")).To(BeEmpty(), name)
	}
	// And the right signature on the right Connection is accepted (the cases above were
	// refused for what they named, not for their body).
	g.Expect(postHook(t, url+hookPath(h.key), body, good).status).To(Equal(http.StatusAccepted))
}

// TestWebhookUnsignedCostsNoLookup (item 12b): a missing or ill-formed X-Hub-Signature is
// refused before anything is looked up: no Connection read, no Secret GET.
func TestWebhookUnsignedCostsNoLookup(t *testing.T) {
	g := NewWithT(t)
	h := newHookSite(t)
	url := h.replica(t) + hookPath(h.key)
	body := issueEvent("PRJA", time.Now(), 1)
	hexSig := strings.TrimPrefix(syncer.Sign(h.secret, body), "sha256=")

	for _, sig := range []string{
		"", // none
		"sha256=",
		"sha256=zz",
		"sha1=" + hexSig[:40],
		hexSig,                        // no algorithm
		"sha256=" + hexSig[:63],       // one digit short
		"sha256=" + hexSig + "0",      // one digit long
		"sha256=" + hexSig[:62] + "g", // not hex
		"sha256= " + hexSig,
		"SHA256=" + hexSig,
	} {
		a := postHook(t, url, body, sig)
		g.Expect(a.status).To(Equal(http.StatusUnauthorized), "%q", sig)
		g.Expect(a.errorBody(t)).To(HaveKeyWithValue("code", "UNAUTHENTICATED"), "%q", sig)
	}
	g.Expect(h.reader.secretGets.Load()).To(BeZero(), "no Secret GET for an unsigned request")
	g.Expect(h.reader.gets.Load()+h.client.gets.Load()).To(BeZero(), "no lookup at all")

	// A well-formed signature is worth one live Secret GET (the counters do count).
	g.Expect(postHook(t, url, body, "sha256="+strings.Repeat("0", 64)).status).To(Equal(http.StatusUnauthorized))
	g.Expect(h.reader.secretGets.Load()).To(Equal(int32(1)))
}

// TestWebhookRateLimitBeforeSecretRead (item 12b): a burst of signed-looking requests to
// one Connection beyond its bucket answers 429 with Retry-After and costs no Secret GET;
// another Connection is not affected, and a name that does not exist is limited the same
// way (a 429 is no existence oracle either).
func TestWebhookRateLimitBeforeSecretRead(t *testing.T) {
	g := NewWithT(t)
	h := newHookSite(t)
	base := h.replica(t)
	other := h.connection(h.jira, withWebhook("hook"))
	body := issueEvent("PRJA", time.Now(), 1)
	wrong := syncer.Sign([]byte("guess"), body)

	const burst = 3 * syncer.DefaultWebhookBurst
	start := time.Now()
	var refused, limited int
	for range burst {
		switch a := postHook(t, base+hookPath(h.key), body, wrong); a.status {
		case http.StatusUnauthorized:
			refused++
		case http.StatusTooManyRequests:
			limited++
			g.Expect(a.errorBody(t)).To(HaveKeyWithValue("code", "VENDOR_RATE_LIMITED"))
			after, err := strconv.Atoi(a.header.Get("Retry-After"))
			g.Expect(err).NotTo(HaveOccurred(), "Retry-After in seconds")
			g.Expect(after).To(BeNumerically(">=", 1))
		default:
			t.Fatalf("unexpected %d: %s", a.status, a.body)
		}
	}
	elapsed := time.Since(start)
	allowed := syncer.DefaultWebhookBurst + int(elapsed.Seconds()*syncer.DefaultWebhookRate) + 1
	t.Logf("%d requests in %s: %d verified (and refused), %d limited", burst, elapsed.Round(time.Millisecond), refused, limited)
	g.Expect(refused).To(BeNumerically("<=", allowed))
	g.Expect(limited).To(BeNumerically(">=", burst-allowed))
	g.Expect(int(h.reader.secretGets.Load())).To(Equal(refused), "a limited request reads no Secret")

	// Another Connection has its own bucket.
	g.Expect(postHook(t, base+hookPath(other), body, syncer.Sign(h.secret, body)).status).To(Equal(http.StatusAccepted))

	// An unknown name drains and answers alike.
	unknown := base + hookPath(client.ObjectKey{Namespace: h.ns, Name: "nope"})
	statuses := map[int]int{}
	for range burst {
		statuses[postHook(t, unknown, body, wrong).status]++
	}
	g.Expect(statuses[http.StatusTooManyRequests]).To(BeNumerically(">=", burst-allowed))
}

// TestWebhookConcurrencyLimit (item 12b): while DefaultWebhookConcurrency requests are
// waiting on their Secret GET, one more answers 429 at once instead of queueing.
func TestWebhookConcurrencyLimit(t *testing.T) {
	g := NewWithT(t)
	h := newHookSite(t)
	h.reader.gate = make(chan struct{})
	h.reader.entered = make(chan struct{}, 100)
	base := h.replica(t)
	// Requests spread over Connections, so no per-Connection bucket is what refuses.
	keys := []client.ObjectKey{h.key}
	for range 3 {
		keys = append(keys, h.connection(h.jira, withWebhook("hook")))
	}
	body := issueEvent("PRJA", time.Now(), 1)
	wrong := syncer.Sign([]byte("guess"), body)

	var wg sync.WaitGroup
	answers := make(chan int, syncer.DefaultWebhookConcurrency)
	for i := range syncer.DefaultWebhookConcurrency {
		wg.Go(func() { answers <- postHook(t, base+hookPath(keys[i%len(keys)]), body, wrong).status })
	}
	for range syncer.DefaultWebhookConcurrency {
		select {
		case <-h.reader.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("requests did not reach the Secret read")
		}
	}
	extra := make(chan hookAnswer, 1)
	go func() { extra <- postHook(t, base+hookPath(keys[0]), body, wrong) }()
	select {
	case a := <-extra:
		g.Expect(a.status).To(Equal(http.StatusTooManyRequests))
		g.Expect(a.header.Get("Retry-After")).NotTo(BeEmpty())
	case <-time.After(3 * time.Second):
		close(h.reader.gate)
		t.Fatalf("a request beyond the concurrency limit queued (answered %d once the others finished)", (<-extra).status)
	}
	close(h.reader.gate)
	wg.Wait()
	close(answers)
	for status := range answers {
		g.Expect(status).To(Equal(http.StatusUnauthorized))
	}
	g.Expect(int(h.reader.secretGets.Load())).To(Equal(syncer.DefaultWebhookConcurrency), "the refused one read nothing")
}

// TestWebhookReplay (item 12c): a signed delivery replayed within its window, to the
// same replica, to other replicas, and to several replicas at once, patches the
// Connection exactly once; replays answer 202 with accepted=false.
func TestWebhookReplay(t *testing.T) {
	g := NewWithT(t)
	h := newHookSite(t)
	a := h.replica(t)
	body := issueEvent("PRJA", time.Now(), 1)
	sig := syncer.Sign(h.secret, body)

	first := postHook(t, a+hookPath(h.key), body, sig)
	g.Expect(first.status).To(Equal(http.StatusAccepted))
	g.Expect(first.data(t)).To(HaveKeyWithValue("accepted", true))
	after := get(t, h.key)
	value := webhookAnnotations(after)["PRJA"]
	g.Expect(value).NotTo(BeEmpty())
	g.Expect(h.client.patches.Load()).To(Equal(int32(1)))

	replays := []string{a, a, h.replica(t), h.replica(t)}
	for i, url := range replays {
		r := postHook(t, url+hookPath(h.key), body, sig)
		g.Expect(r.status).To(Equal(http.StatusAccepted), "replay %d", i)
		g.Expect(r.data(t)).To(HaveKeyWithValue("accepted", false), "replay %d", i)
	}
	g.Expect(h.client.patches.Load()).To(Equal(int32(1)), "replays patch nothing")
	now := get(t, h.key)
	g.Expect(webhookAnnotations(now)["PRJA"]).To(Equal(value))
	g.Expect(now.ResourceVersion).To(Equal(after.ResourceVersion), "the Connection was not written again")

	// One new delivery reaching four replicas at the same moment: one patch.
	body = issueEvent("PRJA", time.Now(), 2)
	sig = syncer.Sign(h.secret, body)
	urls := []string{h.replica(t), h.replica(t), h.replica(t), h.replica(t)}
	var wg sync.WaitGroup
	var accepted atomic.Int32
	for _, url := range urls {
		wg.Go(func() {
			r := postHook(t, url+hookPath(h.key), body, sig)
			if r.status != http.StatusAccepted {
				t.Errorf("answered %d: %s", r.status, r.body)
				return
			}
			if r.data(t)["accepted"] == true {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	g.Expect(accepted.Load()).To(Equal(int32(1)), "exactly one replica accepts")
	g.Expect(h.client.patches.Load()).To(Equal(int32(2)), "and patches")
	g.Expect(webhookAnnotations(get(t, h.key))["PRJA"]).NotTo(Equal(value))
}

// TestWebhookAnnotationBound (item 12d): webhooks naming 40 distinct containers leave at
// most MaxWebhookAnnotations webhook annotations on the Connection; past the bound they
// collapse into all-containers, so no container's request is lost.
func TestWebhookAnnotationBound(t *testing.T) {
	g := NewWithT(t)
	h := newHookSite(t)
	url := h.replica(t) + hookPath(h.key)
	for i := range 40 {
		body := issueEvent(fmt.Sprintf("P%02d", i), time.Now(), i)
		a := postAccepted(t, url, body, syncer.Sign(h.secret, body))
		g.Expect(a.status).To(Equal(http.StatusAccepted), "%s", a.body)
		g.Expect(a.data(t)).To(HaveKeyWithValue("accepted", true))
		g.Expect(len(webhookAnnotations(get(t, h.key)))).To(BeNumerically("<=", syncer.MaxWebhookAnnotations), "after %d", i+1)
	}
	got := webhookAnnotations(get(t, h.key))
	g.Expect(got).To(HaveKey(syncer.AllContainers), "collapsed: every container is synced")
	g.Expect(got).To(HaveKey("P39"), "the latest container is still named after the collapse")
}

// TestWebhookStalledStaysStalled (item 12e): a Connection whose sink answered 400
// (SinkRejected, Stalled) stays stalled under verified webhooks: they are accepted, but
// the sink receives no POST until a human changes something.
func TestWebhookStalledStaysStalled(t *testing.T) {
	g := NewWithT(t)
	h := newHookSite(t)
	h.fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 20, Seed: 12, Start: time.Now().Add(-24 * time.Hour)})
	h.sink.Fail(sinktest.Failure{Status: http.StatusBadRequest})
	startManager(t)
	key := h.key
	g.Eventually(synced(t, key), time.Minute).Should(Equal("False/SinkRejected"))
	stalled := func() string {
		c := meta.FindStatusCondition(get(t, key).Status.Conditions, v1alpha1.StalledCondition)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
	g.Eventually(stalled, 10*time.Second).Should(Equal("True/SinkRejected"))
	attempts := h.sink.Attempts()

	url := h.replica(t) + hookPath(key)
	issues := h.fake.JiraIssueKeys("PRJA")
	for i := range 5 {
		h.fake.UpdateIssue(issues[i], time.Now())
		body := issueEvent("PRJA", time.Now(), i)
		if i == 4 {
			body = []byte(fmt.Sprintf(`{"webhookEvent":"jira:issue_updated","timestamp":%d}`, time.Now().UnixMilli())) // every container
		}
		a := postHook(t, url, body, syncer.Sign(h.secret, body))
		g.Expect(a.status).To(Equal(http.StatusAccepted))
		g.Expect(a.data(t)).To(HaveKeyWithValue("accepted", true))
		time.Sleep(200 * time.Millisecond)
	}
	g.Expect(webhookAnnotations(get(t, key))).To(HaveKey(syncer.AllContainers), "the requests reached the Connection")
	g.Consistently(h.sink.Attempts, 5*time.Second, 100*time.Millisecond).Should(Equal(attempts), "no POST while stalled")
	g.Expect(stalled()).To(Equal("True/SinkRejected"))
	g.Expect(synced(t, key)()).To(Equal("False/SinkRejected"))
}
