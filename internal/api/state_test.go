package api

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

func testScheme(t testing.TB) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// clock is a settable time for the stores of one test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func replica(c client.Client, clk *clock) *stateStore {
	return &stateStore{client: c, reader: c, namespace: "operator", ttl: DefaultStateTTL, now: clk.Now}
}

func payload(clk *clock, nonce string) statePayload {
	return statePayload{
		Namespace: "team", Name: "jira", UID: "uid-1", Expires: clk.Now().Add(DefaultStateTTL).Unix(),
		Nonce: nonce, Verifier: strings.Repeat("v", 43), RedirectURI: "https://api.example.com/oauth/v1/callback", User: "alice",
	}
}

// TestStateAcrossReplicas: a state sealed by one replica opens on another (the key is
// shared through a Secret the first one made), carries its payload unread by anyone
// else, and is refused when tampered with, expired, or used twice, even when replicas
// race to use it.
func TestStateAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).Build()
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	a, b := replica(c, clk), replica(c, clk)

	p := payload(clk, "nonce-1")
	state, err := a.seal(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(state, p.Verifier) || strings.Contains(state, "team") || len(state) > maxStateLen {
		t.Errorf("the state shows its payload or is too long: %s", state)
	}
	got, err := b.open(ctx, state)
	if err != nil || got != p {
		t.Fatalf("open on another replica = %+v, %v; want %+v", got, err, p)
	}
	var key corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "operator", Name: StateKeySecretName}, &key); err != nil || len(key.Data[stateKeyData]) != stateKeyLen {
		t.Fatalf("key Secret: %v (%d bytes)", err, len(key.Data[stateKeyData]))
	}

	for i := range len(state) {
		if state[i] == '.' {
			continue
		}
		tampered := state[:i] + string(rune('A'+(state[i]+1)%26)) + state[i+1:]
		if tampered == state {
			continue
		}
		if _, err := b.open(ctx, tampered); !errors.Is(err, errStateInvalid) {
			t.Fatalf("tampered at %d: %v, want invalid", i, err)
		}
	}
	for _, junk := range []string{"", "v1", "v1..", "v2." + state[3:], state + ".x", strings.Repeat("a", 5000)} {
		if _, err := b.open(ctx, junk); !errors.Is(err, errStateInvalid) {
			t.Errorf("open(%.20q) = %v, want invalid", junk, err)
		}
	}

	// Used once, on whichever replica: every other use is a replay.
	if err := a.claim(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := b.claim(ctx, p); !errors.Is(err, errStateReplayed) {
		t.Errorf("second claim on another replica: %v, want replayed", err)
	}

	// Racing replicas: exactly one wins.
	race := payload(clk, "nonce-race")
	var wins, replays int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = b
			}
			err := st.claim(ctx, race)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, errStateReplayed):
				replays++
			default:
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || replays != 15 {
		t.Errorf("racing claims: %d won, %d replays; want 1 and 15", wins, replays)
	}

	// Expiry: valid until the 10 minutes are over.
	clk.Add(DefaultStateTTL - time.Second)
	if _, err := b.open(ctx, state); err != nil {
		t.Errorf("open just before expiry: %v", err)
	}
	clk.Add(time.Second)
	if _, err := b.open(ctx, state); !errors.Is(err, errStateExpired) {
		t.Errorf("open at expiry: %v, want expired", err)
	}

	// Expired entries leave the used-state Secret.
	if err := a.claim(ctx, payload(clk, "nonce-late")); err != nil {
		t.Fatal(err)
	}
	var used corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "operator", Name: UsedStatesSecretName}, &used); err != nil {
		t.Fatal(err)
	}
	if len(used.Data) != 1 {
		t.Errorf("used states hold %d entries after expiry, want 1 (the live one)", len(used.Data))
	}
	for k := range used.Data {
		if strings.Contains(k, "nonce") {
			t.Errorf("a nonce is stored in clear: %s", k)
		}
	}
}

// TestStateKeyRotation: deleting the key Secret rotates the key; replicas pick the new
// one up when a state does not verify, and states of the old key stop working.
func TestStateKeyRotation(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).Build()
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	a := replica(c, clk)
	old, err := a.seal(ctx, payload(clk, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "operator", Name: StateKeySecretName}}); err != nil {
		t.Fatal(err)
	}
	b := replica(c, clk) // makes a new key
	fresh, err := b.seal(ctx, payload(clk, "n2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.open(ctx, fresh); err != nil {
		t.Errorf("a replica with the old key cached did not pick up the new one: %v", err)
	}
	if _, err := a.open(ctx, old); !errors.Is(err, errStateInvalid) {
		t.Errorf("a state of the deleted key: %v, want invalid", err)
	}
}
