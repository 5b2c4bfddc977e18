package syncer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
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
	// captured request cannot be replayed later.
	WebhookMaxAge    = 5 * time.Minute
	keyWebhookSecret = "secret"
	// WebhookAnnotationPrefix marks a container whose sync a verified webhook asked for:
	// webhook.connectors.unified.dev/<container key>: <when>-<nonce>.
	WebhookAnnotationPrefix = "webhook.connectors.unified.dev/"
	// AllContainers is the annotation name used when the payload names no container (or
	// one that cannot be an annotation name): every container is synced.
	AllContainers = "all-containers"
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
type WebhookHandler struct {
	// Client reads Connections (the cache is fine) and patches their annotations.
	Client client.Client
	// Reader reads the webhook Secret live.
	Reader client.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
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

// ServeHTTP implements http.Handler for a "POST …/{ns}/connections/{name}" route; {ns}
// and {name} come from the request's path values.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := types.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxWebhookBody+1))
	if err != nil {
		envelope.Error(w, http.StatusBadRequest, "VALIDATION", "unreadable body", requestID(w, r))
		return
	}
	if len(body) > MaxWebhookBody {
		envelope.Error(w, http.StatusRequestEntityTooLarge, "VALIDATION", "body larger than 1 MiB", requestID(w, r))
		return
	}
	sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature"), "sha256=")
	if !ok {
		envelope.Error(w, http.StatusUnauthorized, "UNAUTHENTICATED", "missing X-Hub-Signature: sha256=…", requestID(w, r))
		return
	}

	var conn v1alpha1.Connection
	if err := h.Client.Get(r.Context(), key, &conn); err != nil || conn.Spec.Webhook == nil {
		// The same answer whether the Connection is missing or has no webhook.
		envelope.Error(w, http.StatusNotFound, "NOT_FOUND", "no webhook receiver for this Connection", requestID(w, r))
		return
	}
	secret, err := vendorclient.ReadSecret(r.Context(), h.Reader, conn.Namespace, conn.Spec.Webhook.SecretRef.Name)
	var p *vendorclient.Problem
	if errors.As(err, &p) {
		envelope.Error(w, http.StatusNotFound, "NOT_FOUND", "no webhook receiver for this Connection", requestID(w, r))
		return
	}
	if err != nil {
		envelope.Error(w, http.StatusInternalServerError, "INTERNAL", "cannot read the webhook secret", requestID(w, r))
		return
	}
	key64 := secret.Data[keyWebhookSecret]
	if len(key64) == 0 || !validSignature(key64, body, sig) {
		envelope.Error(w, http.StatusUnauthorized, "UNAUTHENTICATED", "invalid signature", requestID(w, r))
		return
	}

	var payload webhookPayload
	if err := json.Unmarshal(body, &payload); err != nil {
		envelope.Error(w, http.StatusBadRequest, "VALIDATION", "body is not a JSON webhook event", requestID(w, r))
		return
	}
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	at := time.UnixMilli(payload.Timestamp)
	if payload.Timestamp == 0 || now.Sub(at) > WebhookMaxAge || at.Sub(now) > WebhookMaxAge {
		envelope.Error(w, http.StatusUnauthorized, "UNAUTHENTICATED", "stale or missing timestamp", requestID(w, r))
		return
	}

	container := payload.container()
	if container != "" && len(conn.Spec.Scope.Containers) > 0 && !slices.Contains(conn.Spec.Scope.Containers, container) {
		envelope.OK(w, http.StatusAccepted, map[string]any{"accepted": false, "reason": "container not in scope"})
		return
	}
	name := container
	if !annotationName.MatchString(name) {
		name = AllContainers
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		WebhookAnnotationPrefix + name: now.UTC().Format(time.RFC3339Nano) + "-" + nonce(),
	}}})
	if err := h.Client.Patch(r.Context(), &conn, client.RawPatch(types.MergePatchType, patch)); err != nil {
		log.FromContext(r.Context()).Error(err, "annotating Connection for a webhook sync", "connection", key.String())
		envelope.Error(w, http.StatusInternalServerError, "INTERNAL", "cannot schedule the sync", requestID(w, r))
		return
	}
	envelope.OK(w, http.StatusAccepted, map[string]any{"accepted": true, "container": container})
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

// validSignature compares HMAC-SHA256(key, body) with the hex signature in constant time.
func validSignature(key, body []byte, sigHex string) bool {
	got, err := hex.DecodeString(sigHex)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), got)
}

// Sign returns the X-Hub-Signature value for body, as the vendor computes it.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func nonce() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// requestID is the request's X-Request-Id: as set by the API server's middleware on the
// response, else as sent by the caller.
func requestID(w http.ResponseWriter, r *http.Request) string {
	if id := w.Header().Get("X-Request-Id"); id != "" {
		return id
	}
	return r.Header.Get("X-Request-Id")
}
