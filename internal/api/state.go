package api

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// OAuth2 state. The authorize route hands the vendor a state that the callback, on any
// replica, must be able to trust without memory of its own: it names the Connection
// (namespace, name, UID), the redirect URI sent, the PKCE verifier and an expiry, and is
// encrypted (AES-256-GCM, so the verifier stays secret from the browser) and signed
// (HMAC-SHA256) with keys derived from one random key in a Secret of the operator's
// namespace (StateKeySecretName), which the first replica that needs it creates.
//
// Single use: the callback records the state's nonce digest in another Secret of the
// operator's namespace (UsedStatesSecretName) with optimistic concurrency before it
// exchanges the code, and refuses a nonce already there. Entries are dropped once their
// state has expired, so the Secret stays small. A Secret rather than a ConfigMap because
// the operator already reads Secrets live (never from a cache) and holds RBAC for them.

const (
	stateVersion = "v1"
	stateKeyData = "key"
	stateKeyLen  = 32
	maxStateLen  = 4096
	// maxUsedStates bounds the used-state Secret (about 60 bytes an entry).
	maxUsedStates = 5000
	// keyReloadEvery rereads the key Secret (it may have been rotated by deleting it);
	// forcedReloadEvery bounds rereads caused by states that do not verify.
	keyReloadEvery    = 5 * time.Minute
	forcedReloadEvery = 10 * time.Second
	stateAAD          = "connector-operator oauth2 state v1"
)

// statePayload is what a state carries.
type statePayload struct {
	Namespace   string `json:"ns"`
	Name        string `json:"n"`
	UID         string `json:"uid"`
	Expires     int64  `json:"exp"`
	Nonce       string `json:"nonce"`
	Verifier    string `json:"pkce,omitempty"`
	RedirectURI string `json:"ru"`
	User        string `json:"u"`
}

var (
	errStateInvalid  = errors.New("invalid state")
	errStateExpired  = errors.New("expired state")
	errStateReplayed = errors.New("state already used")
	errStatesFull    = errors.New("too many authorizations in progress")
)

// stateStore seals, opens and claims states.
type stateStore struct {
	client    client.Client
	reader    client.Reader
	namespace string
	ttl       time.Duration
	now       func() time.Time // tests

	mu         sync.Mutex
	master     []byte
	loadedAt   time.Time
	lastForced time.Time
}

func (st *stateStore) clock() time.Time {
	if st.now != nil {
		return st.now()
	}
	return time.Now()
}

// key returns the master key, reading (or creating) the Secret when it is not loaded,
// is old, or force asks and no forced reload happened recently.
func (st *stateStore) key(ctx context.Context, force bool) ([]byte, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.clock()
	fresh := st.master != nil && now.Sub(st.loadedAt) < keyReloadEvery
	if fresh && (!force || now.Sub(st.lastForced) < forcedReloadEvery) {
		return st.master, nil
	}
	if force {
		st.lastForced = now
	}
	key := client.ObjectKey{Namespace: st.namespace, Name: StateKeySecretName}
	for range 3 {
		var s corev1.Secret
		err := st.reader.Get(quiet(ctx), key, &s)
		if apierrors.IsNotFound(err) {
			master := make([]byte, stateKeyLen)
			_, _ = rand.Read(master)
			s = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: st.namespace, Name: StateKeySecretName, Labels: managedLabels()},
				Data:       map[string][]byte{stateKeyData: master},
			}
			// Create is atomic: when replicas race, one wins and the others read its key.
			err = st.client.Create(quiet(ctx), &s)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("reading the OAuth2 state key Secret %s: %w", key, err)
		}
		if len(s.Data[stateKeyData]) < stateKeyLen {
			return nil, fmt.Errorf("secret %s holds no usable %q (at least %d bytes); delete it to have a new key made", key, stateKeyData, stateKeyLen)
		}
		st.master, st.loadedAt = s.Data[stateKeyData], now
		return st.master, nil
	}
	return nil, fmt.Errorf("creating the OAuth2 state key Secret %s: conflicting creations", key)
}

func derive(master []byte, purpose string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("connector-operator/oauth2-state/" + purpose))
	return m.Sum(nil)
}

func sign(master []byte, msg string) []byte {
	m := hmac.New(sha256.New, derive(master, "mac"))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// seal turns p into a state string.
func (st *stateStore) seal(ctx context.Context, p statePayload) (string, error) {
	master, err := st.key(ctx, false)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	aead, err := newAEAD(master)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	body := stateVersion + "." + base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(stateAAD)))
	return body + "." + base64.RawURLEncoding.EncodeToString(sign(master, body)), nil
}

func newAEAD(master []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(derive(master, "enc"))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// open verifies and decrypts a state. A state that does not verify with the loaded key
// is tried once more with the key reread, in case it was rotated.
func (st *stateStore) open(ctx context.Context, raw string) (statePayload, error) {
	if len(raw) > maxStateLen || strings.Count(raw, ".") != 2 || !strings.HasPrefix(raw, stateVersion+".") {
		return statePayload{}, errStateInvalid
	}
	body, sig, _ := strings.Cut(raw[len(stateVersion)+1:], ".")
	body = stateVersion + "." + body
	gotSig, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return statePayload{}, errStateInvalid
	}
	master, err := st.key(ctx, false)
	if err != nil {
		return statePayload{}, err
	}
	if !hmac.Equal(gotSig, sign(master, body)) {
		if master, err = st.key(ctx, true); err != nil {
			return statePayload{}, err
		}
		if !hmac.Equal(gotSig, sign(master, body)) {
			return statePayload{}, errStateInvalid
		}
	}
	sealed, err := base64.RawURLEncoding.DecodeString(body[len(stateVersion)+1:])
	if err != nil {
		return statePayload{}, errStateInvalid
	}
	aead, err := newAEAD(master)
	if err != nil {
		return statePayload{}, err
	}
	if len(sealed) < aead.NonceSize() {
		return statePayload{}, errStateInvalid
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(stateAAD))
	if err != nil {
		return statePayload{}, errStateInvalid
	}
	var p statePayload
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if dec.Decode(&p) != nil || p.Namespace == "" || p.Name == "" || p.Nonce == "" || p.RedirectURI == "" {
		return statePayload{}, errStateInvalid
	}
	if !st.clock().Before(time.Unix(p.Expires, 0)) {
		return statePayload{}, errStateExpired
	}
	return p, nil
}

// claim marks p's nonce used, failing with errStateReplayed when it already was.
func (st *stateStore) claim(ctx context.Context, p statePayload) error {
	entry := digest("nonce", p.Nonce)[:32]
	key := client.ObjectKey{Namespace: st.namespace, Name: UsedStatesSecretName}
	backoff := wait.Backoff{Steps: 12, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.5}
	return retry.RetryOnConflict(backoff, func() error {
		var s corev1.Secret
		err := st.reader.Get(quiet(ctx), key, &s)
		if apierrors.IsNotFound(err) {
			s = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: st.namespace, Name: UsedStatesSecretName, Labels: managedLabels()},
				Data:       map[string][]byte{entry: []byte(strconv.FormatInt(p.Expires, 10))},
			}
			err = st.client.Create(quiet(ctx), &s)
			if apierrors.IsAlreadyExists(err) {
				// Another replica made it first: read it and try again.
				return apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, key.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if _, used := s.Data[entry]; used {
			return errStateReplayed
		}
		now := st.clock().Unix()
		for k, v := range s.Data {
			if exp, err := strconv.ParseInt(string(v), 10, 64); err != nil || exp <= now {
				delete(s.Data, k)
			}
		}
		if len(s.Data) >= maxUsedStates {
			return errStatesFull
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[entry] = []byte(strconv.FormatInt(p.Expires, 10))
		// Update carries the resourceVersion read: a concurrent claim makes it Conflict.
		return st.client.Update(quiet(ctx), &s)
	})
}

// managedLabels mark the Secrets the API creates.
func managedLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/managed-by": "connector-operator"}
}
