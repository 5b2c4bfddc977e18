package syncer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/envelope"
	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// The receiver patches Connections' annotations (it reads them with the manager's
// existing get/list/watch).
// +kubebuilder:rbac:groups=connectors.unified.dev,resources=connections,verbs=patch

// Webhook receiver limits.
const (
	// MaxWebhookBody is the largest payload accepted; Jira's issue events are far
	// smaller, and the body is read before the signature can be checked.
	MaxWebhookBody = 1 << 20
	// WebhookMaxAge refuses payloads whose timestamp is further than this from now, so a
	// captured request cannot be replayed later (and within it, the replay memory below
	// refuses it).
	WebhookMaxAge    = 5 * time.Minute
	keyWebhookSecret = "secret"
	// WebhookAnnotationPrefix marks a container whose sync a verified webhook asked for:
	// webhook.connectors.unified.dev/<container key>: <payload time>-<body digest>. The
	// value is derived from the body, so a replay (to any replica) finds it already there.
	WebhookAnnotationPrefix = "webhook.connectors.unified.dev/"
	// AllContainers is the annotation name used when the payload names no container (or
	// one that cannot be an annotation name), or when a new container would exceed
	// MaxWebhookAnnotations: every container is synced.
	AllContainers = "all-containers"

	// DefaultWebhookConcurrency bounds the requests the receiver works on at once (each
	// holds up to MaxWebhookBody and may cost a live Secret GET); beyond it the answer is
	// 429 at once rather than a queue.
	DefaultWebhookConcurrency = 16
	// DefaultWebhookRate and DefaultWebhookBurst are the per-Connection token bucket
	// every signed-looking request draws from before anything is looked up. Jira sends a
	// burst on a bulk edit; one incremental sync covers them all, and Jira retries a 429.
	DefaultWebhookRate  = 5
	DefaultWebhookBurst = 20
	// MaxWebhookAnnotations bounds the webhook annotations of one Connection. A webhook
	// for a container not yet annotated that would exceed it collapses them: the same
	// merge patch sets all-containers and removes every per-container annotation. Nothing
	// is lost (all-containers syncs every container, including any whose annotation the
	// leader had not seen yet), which dropping the oldest could not promise.
	MaxWebhookAnnotations = 32

	// Memory bounds: accepted deliveries remembered for replay refusal (each until its
	// timestamp leaves the window), and per-Connection rate limiters (keyed by the path,
	// so also for names that do not exist).
	webhookReplayMemory  = 10000
	webhookLimiterMemory = 10000
	// webhookPatchAttempts is how often an optimistic-concurrency conflict on the
	// annotation patch is retried after a live re-read.
	webhookPatchAttempts = 3
)

// Envelope codes and messages of the receiver.
const (
	codeUnauthenticated = "UNAUTHENTICATED"
	// codeRateLimited answers 429 (concurrency or per-Connection limit). DESIGN.md's list
	// has one code for 429 with Retry-After, VENDOR_RATE_LIMITED, and this route's caller
	// is the vendor itself: read it as "the vendor's deliveries are being limited; retry
	// after Retry-After". The code keeps its one status and its Retry-After, and the list
	// stays closed (a new code would be a contract change).
	codeRateLimited = "VENDOR_RATE_LIMITED"
	// msgUnverified is the one answer (401) for an unknown Connection, one without a
	// webhook, a missing webhook Secret or key, and a signature that does not match: a
	// caller who cannot sign learns nothing about what exists.
	msgUnverified = "signature not verified: invalid signature or no webhook receiver for this Connection"
	// msgMalformed is refused before any lookup, whatever the path names.
	msgMalformed = "missing or ill-formed X-Hub-Signature (want sha256=<64 hex digits>)"
	msgBusy      = "too many webhook deliveries in progress; retry after Retry-After"
	msgLimited   = "too many webhook deliveries for this Connection; retry after Retry-After"
	reasonReplay = "replay: this delivery was already accepted"
)

// annotationName is what a container key may be to serve as an annotation name.
var annotationName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// WebhookHandler receives signed vendor webhooks on
// POST /webhooks/v1/namespaces/{ns}/connections/{name}. It verifies X-Hub-Signature
// (HMAC-SHA256 of the raw body with the Connection's webhook secret) in constant time and
// refuses unsigned, badly signed, stale and oversize requests. It never trusts the payload
// as data: it only learns which container changed, and asks the leader for an incremental
// sync of it by annotating the Connection (any replica may receive the webhook; the
// annotation reaches the leader's reconciler through the API server).
//
// What a request may cost before its signature is checked is bounded, in this order:
//
//	step                                     answer when refused
//	X-Hub-Signature well-formed (no lookup)   401 UNAUTHENTICATED
//	per-Connection token bucket (path key)    429 VENDOR_RATE_LIMITED + Retry-After
//	receiver-wide concurrency                 429 VENDOR_RATE_LIMITED + Retry-After
//	body ≤ 1 MiB                              413 VALIDATION
//	exact delivery already accepted           202 accepted=false (no lookup at all)
//	Connection (cache), Secret (live GET),    401 UNAUTHENTICATED, one message for all
//	signature
//
// The bucket is keyed by the path, not by a Connection found, so a 429 says nothing about
// existence either. A caller who knows a Connection's name can spend its bucket with
// well-formed wrong signatures and delay its webhooks (the interval sync still runs);
// without the bucket it could turn each request into a Secret GET.
//
// Replays: an accepted delivery (Connection, signature, body) is remembered until its
// timestamp leaves the window and answers 202 {"accepted":false,"reason":"replay: …"}
// without a patch. Across replicas the annotation value is derived from the body
// (payload time and body digest): a Connection already carrying it is not patched again,
// and the patch carries the resourceVersion it was computed from, so two replicas racing
// on one delivery patch once.
type WebhookHandler struct {
	// Client reads Connections (the cache is fine) and patches their annotations.
	Client client.Client
	// Reader reads the webhook Secret live, and the Connection after a patch conflict.
	Reader client.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Concurrency, Rate and Burst override DefaultWebhookConcurrency, DefaultWebhookRate
	// and DefaultWebhookBurst when positive.
	Concurrency int
	Rate        rate.Limit
	Burst       int

	once     sync.Once
	inFlight chan struct{}
	limiters *limiterSet
	accepted *replayMemory
}

// webhookPayload is what the receiver reads of a Jira (or Confluence) event.
type webhookPayload struct {
	WebhookEvent string `json:"webhookEvent"`
	Timestamp    int64  `json:"timestamp"`
	Issue        *struct {
		Key    string `json:"key"`
		Fields struct {
			Project struct {
				Key string `json:"key"`
			} `json:"project"`
		} `json:"fields"`
	} `json:"issue"`
	Page *struct {
		SpaceKey string `json:"spaceKey"`
	} `json:"page"`
}

func (h *WebhookHandler) init() {
	h.once.Do(func() {
		h.inFlight = make(chan struct{}, positiveOr(h.Concurrency, DefaultWebhookConcurrency))
		limit := h.Rate
		if limit <= 0 {
			limit = DefaultWebhookRate
		}
		h.limiters = &limiterSet{limit: limit, burst: positiveOr(h.Burst, DefaultWebhookBurst), max: webhookLimiterMemory,
			m: map[string]*rate.Limiter{}}
		h.accepted = &replayMemory{max: webhookReplayMemory, m: map[[sha256.Size]byte]replayEntry{}}
	})
}

// ServeHTTP implements http.Handler for a "POST …/{ns}/connections/{name}" route; {ns}
// and {name} come from the request's path values.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	rid := requestID(w, r)
	unverified := func() { envelope.Error(w, http.StatusUnauthorized, codeUnauthenticated, msgUnverified, rid) }

	// Nothing is read, not even the body, for a request that cannot be signed.
	sig, ok := parseSignature(r.Header.Get("X-Hub-Signature"))
	if !ok {
		envelope.Error(w, http.StatusUnauthorized, codeUnauthenticated, msgMalformed, rid)
		return
	}
	key := types.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
	if len(validation.IsDNS1123Label(key.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(key.Name)) > 0 {
		// Cannot name a Connection: the answer of an unknown one (and no limiter for it).
		unverified()
		return
	}
	if wait := h.limiters.reserve(key.String(), time.Now()); wait > 0 {
		tooMany(w, wait, msgLimited, rid)
		return
	}
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		tooMany(w, time.Second, msgBusy, rid)
		return
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, MaxWebhookBody+1))
	if err != nil {
		envelope.Error(w, http.StatusBadRequest, "VALIDATION", "unreadable body", rid)
		return
	}
	if len(body) > MaxWebhookBody {
		envelope.Error(w, http.StatusRequestEntityTooLarge, "VALIDATION", "body larger than 1 MiB", rid)
		return
	}
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	delivery := deliveryDigest(key, sig, body)
	if container, ok := h.accepted.seen(delivery, now); ok {
		// The exact request was verified and accepted before: no lookup, no patch.
		envelope.OK(w, http.StatusAccepted, map[string]any{"accepted": false, "container": container, "reason": reasonReplay})
		return
	}

	var conn v1alpha1.Connection
	if err := h.Client.Get(r.Context(), key, &conn); err != nil && !apierrors.IsNotFound(err) {
		log.FromContext(r.Context()).Error(err, "reading Connection for a webhook", "connection", key.String())
		envelope.Error(w, http.StatusInternalServerError, "INTERNAL", "cannot verify the webhook now", rid)
		return
	} else if err != nil || conn.Spec.Webhook == nil {
		unverified()
		return
	}
	secret, err := vendorclient.ReadSecret(r.Context(), h.Reader, conn.Namespace, conn.Spec.Webhook.SecretRef.Name)
	var p *vendorclient.Problem
	if errors.As(err, &p) {
		unverified()
		return
	}
	if err != nil {
		envelope.Error(w, http.StatusInternalServerError, "INTERNAL", "cannot verify the webhook now", rid)
		return
	}
	key64 := secret.Data[keyWebhookSecret]
	if len(key64) == 0 || !validSignature(key64, body, sig) {
		unverified()
		return
	}

	// Signed: from here on the caller holds the secret, and the answers may differ.
	var payload webhookPayload
	if err := json.Unmarshal(body, &payload); err != nil {
		envelope.Error(w, http.StatusBadRequest, "VALIDATION", "body is not a JSON webhook event", rid)
		return
	}
	at := time.UnixMilli(payload.Timestamp)
	if payload.Timestamp == 0 || now.Sub(at) > WebhookMaxAge || at.Sub(now) > WebhookMaxAge {
		envelope.Error(w, http.StatusUnauthorized, codeUnauthenticated, "stale or missing timestamp", rid)
		return
	}
	container := payload.container()
	// Claimed before the patch, so a concurrent copy of this delivery on this replica is
	// a replay at once; released if the patch fails, so the vendor's retry is not.
	if !h.accepted.claim(delivery, at.Add(WebhookMaxAge), container, now) {
		envelope.OK(w, http.StatusAccepted, map[string]any{"accepted": false, "container": container, "reason": reasonReplay})
		return
	}
	if container != "" && len(conn.Spec.Scope.Containers) > 0 && !slices.Contains(conn.Spec.Scope.Containers, container) {
		envelope.OK(w, http.StatusAccepted, map[string]any{"accepted": false, "container": container, "reason": "container not in scope"})
		return
	}
	name := container
	if !annotationName.MatchString(name) {
		name = AllContainers
	}
	value := at.UTC().Format(time.RFC3339Nano) + "-" + hex.EncodeToString(sha256Sum(body)[:8])
	result, err := h.annotate(r, &conn, name, value)
	if err != nil {
		h.accepted.release(delivery)
		if apierrors.IsNotFound(err) {
			unverified() // deleted since: what anyone would be told now
			return
		}
		log.FromContext(r.Context()).Error(err, "annotating Connection for a webhook sync", "connection", key.String())
		envelope.Error(w, http.StatusInternalServerError, "INTERNAL", "cannot schedule the sync", rid)
		return
	}
	switch result {
	case annotateReplay:
		envelope.OK(w, http.StatusAccepted, map[string]any{"accepted": false, "container": container, "reason": reasonReplay})
	case annotateCollapsed:
		envelope.OK(w, http.StatusAccepted, map[string]any{"accepted": true, "container": container,
			"reason": "more than " + strconv.Itoa(MaxWebhookAnnotations) + " containers asked: every container is synced"})
	default:
		envelope.OK(w, http.StatusAccepted, map[string]any{"accepted": true, "container": container})
	}
}

type annotateResult int

const (
	annotatePatched annotateResult = iota
	annotateCollapsed
	annotateReplay
)

// annotate sets the webhook annotation name=value on conn with one merge patch that
// carries conn's resourceVersion, so the replay check and the annotation bound are
// decided on what the patch applies to. A conflict (a stale cache, another replica) is
// retried on a live read.
func (h *WebhookHandler) annotate(r *http.Request, conn *v1alpha1.Connection, name, value string) (annotateResult, error) {
	for attempt := 1; ; attempt++ {
		annotations := map[string]any{}
		result := annotatePatched
		current := conn.Annotations[WebhookAnnotationPrefix+name]
		switch {
		case current == value || conn.Annotations[WebhookAnnotationPrefix+AllContainers] == value:
			// Another replica (or this one, before a restart) accepted this very body.
			return annotateReplay, nil
		case current == "" && webhookAnnotations(conn) >= MaxWebhookAnnotations:
			for k := range conn.Annotations {
				if strings.HasPrefix(k, WebhookAnnotationPrefix) {
					annotations[k] = nil
				}
			}
			annotations[WebhookAnnotationPrefix+AllContainers] = value
			result = annotateCollapsed
		default:
			annotations[WebhookAnnotationPrefix+name] = value
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": conn.ResourceVersion, "annotations": annotations}})
		err := h.Client.Patch(r.Context(), conn, client.RawPatch(types.MergePatchType, patch))
		if err == nil || !apierrors.IsConflict(err) || attempt == webhookPatchAttempts {
			return result, err
		}
		key := client.ObjectKeyFromObject(conn)
		*conn = v1alpha1.Connection{}
		if err := h.Reader.Get(r.Context(), key, conn); err != nil {
			return result, err
		}
	}
}

// webhookAnnotations counts conn's webhook annotations.
func webhookAnnotations(conn *v1alpha1.Connection) int {
	n := 0
	for k := range conn.Annotations {
		if strings.HasPrefix(k, WebhookAnnotationPrefix) {
			n++
		}
	}
	return n
}

// container is the project or space the event is about, "" when it does not say.
func (p webhookPayload) container() string {
	switch {
	case p.Issue != nil && p.Issue.Fields.Project.Key != "":
		return p.Issue.Fields.Project.Key
	case p.Issue != nil && strings.Contains(p.Issue.Key, "-"):
		return p.Issue.Key[:strings.LastIndex(p.Issue.Key, "-")]
	case p.Page != nil:
		return p.Page.SpaceKey
	}
	return ""
}

// parseSignature reads "sha256=<64 hex digits>", the only form a request can be
// verified with.
func parseSignature(header string) ([]byte, bool) {
	h, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(h) != hex.EncodedLen(sha256.Size) {
		return nil, false
	}
	sig, err := hex.DecodeString(h)
	return sig, err == nil
}

// validSignature compares HMAC-SHA256(key, body) with sig in constant time.
func validSignature(key, body, sig []byte) bool {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), sig)
}

// Sign returns the X-Hub-Signature value for body, as the vendor computes it.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// deliveryDigest names one delivery: the Connection, the signature and the body.
func deliveryDigest(key types.NamespacedName, sig, body []byte) [sha256.Size]byte {
	d := sha256.New()
	for _, part := range [][]byte{[]byte(key.Namespace), []byte(key.Name), sig} {
		d.Write(part)
		d.Write([]byte{0})
	}
	d.Write(body)
	var out [sha256.Size]byte
	d.Sum(out[:0])
	return out
}

// tooMany answers 429 with Retry-After in whole seconds, at least 1.
func tooMany(w http.ResponseWriter, wait time.Duration, message, rid string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	envelope.Error(w, http.StatusTooManyRequests, codeRateLimited, message, rid)
}

func positiveOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// requestID is the request's X-Request-Id: as set by the API server's middleware on the
// response, else as sent by the caller.
func requestID(w http.ResponseWriter, r *http.Request) string {
	if id := w.Header().Get("X-Request-Id"); id != "" {
		return id
	}
	return r.Header.Get("X-Request-Id")
}

// limiterSet is a bounded set of token buckets keyed by Connection path. A full bucket
// is the same as a new one, so those are dropped first when the set is full; then the
// fullest, so a bucket an attacker has drained is the last to be forgotten.
type limiterSet struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	max   int
	m     map[string]*rate.Limiter
}

// reserve takes a token for key; it returns 0, or how long until one is available (and
// then takes none).
func (s *limiterSet) reserve(key string, now time.Time) time.Duration {
	s.mu.Lock()
	lim, ok := s.m[key]
	if !ok {
		if len(s.m) >= s.max {
			s.shrink(now)
		}
		lim = rate.NewLimiter(s.limit, s.burst)
		s.m[key] = lim
	}
	s.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// shrink frees at least a quarter of the set; s.mu is held.
func (s *limiterSet) shrink(now time.Time) {
	type entry struct {
		key    string
		tokens float64
	}
	rest := make([]entry, 0, len(s.m))
	for k, l := range s.m {
		if t := l.TokensAt(now); t >= float64(s.burst) {
			delete(s.m, k)
		} else {
			rest = append(rest, entry{k, t})
		}
	}
	keep := s.max * 3 / 4
	if len(rest) <= keep {
		return
	}
	slices.SortFunc(rest, func(a, b entry) int { return -cmpFloat(a.tokens, b.tokens) })
	for _, e := range rest[:len(rest)-keep] {
		delete(s.m, e.key)
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// replayMemory remembers accepted deliveries until their timestamp leaves the window
// (after that the timestamp check refuses them). When full it forgets the entry closest
// to expiry; the annotation value still catches a replay of it.
type replayMemory struct {
	mu  sync.Mutex
	max int
	m   map[[sha256.Size]byte]replayEntry
}

type replayEntry struct {
	expires   time.Time
	container string
}

// seen reports whether d was accepted and has not expired, and the container it named.
func (m *replayMemory) seen(d [sha256.Size]byte, now time.Time) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[d]
	if !ok || !now.Before(e.expires) {
		return "", false
	}
	return e.container, true
}

// claim records d unless it is already there (then it returns false).
func (m *replayMemory) claim(d [sha256.Size]byte, expires time.Time, container string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[d]; ok && now.Before(e.expires) {
		return false
	}
	if len(m.m) >= m.max {
		var soonest [sha256.Size]byte
		var soonestAt time.Time
		for k, e := range m.m {
			if !now.Before(e.expires) {
				delete(m.m, k)
			} else if soonestAt.IsZero() || e.expires.Before(soonestAt) {
				soonest, soonestAt = k, e.expires
			}
		}
		if len(m.m) >= m.max {
			delete(m.m, soonest)
		}
	}
	m.m[d] = replayEntry{expires: expires, container: container}
	return true
}

// release forgets d (its patch failed: the vendor's retry must not be a replay).
func (m *replayMemory) release(d [sha256.Size]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, d)
}
