package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
	"github.com/unified-connectors/connector-operator/internal/testenv"
)

const (
	clientID     = "operator-client"
	clientSecret = "operator-client-secret-value"
	accountID    = "5b10ac8d82e05b22cc7d4ef5"
)

var (
	// k8s acts as the operator's ServiceAccount, which holds only the RBAC config/rbac
	// ships: the Refreshers of these tests run with it, as the manager's do in a cluster.
	k8s client.Client
	// admin is the envtest admin, for what the operator itself never does.
	admin client.Client
)

func TestMain(m *testing.M) {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	admin = env.Client
	if k8s, err = env.ManagerClient(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	if refused := env.Refused(); len(refused) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the API server refused the operator (config/rbac lacks a verb the code needs): %q\n", refused)
		code = 1
	}
	_ = env.Stop()
	os.Exit(code)
}

// site starts a fake authorization server with one client and account, and a Secret
// (made by the admin, as a tenant would make it) holding a spent access token and a live
// refresh token.
func site(t *testing.T, name string) (*atlassiantest.Server, client.ObjectKey, string) {
	t.Helper()
	fake := atlassiantest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(atlassiantest.Account{ID: accountID, DisplayName: "Mia", Email: "mia@example.com"})
	fake.AddOAuthClient(clientID, clientSecret)
	access, refresh, _ := fake.IssueOAuthTokens(clientID, accountID)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		StringData: map[string]string{
			KeyAccessToken:  access,
			KeyRefreshToken: refresh,
			KeyExpiry:       time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), // expired
		},
	}
	if err := admin.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return fake, client.ObjectKeyFromObject(s), refresh
}

func oauthClient(fake *atlassiantest.Server) Client {
	return Client{ClientID: clientID, ClientSecret: clientSecret, TokenURL: fake.URL() + "/oauth/token", HTTP: &http.Client{Timeout: 10 * time.Second}}
}

func secretData(t *testing.T, key client.ObjectKey) (map[string]string, map[string]string) {
	t.Helper()
	var s corev1.Secret
	if err := k8s.Get(context.Background(), key, &s); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out, s.Annotations
}

func TestRefreshStoresRotatedTokensBeforeUse(t *testing.T) {
	fake, key, oldRefresh := site(t, "rotate")
	r := &Refresher{Client: k8s, Reader: k8s, Holder: "replica-a"}
	tok, err := r.Fresh(context.Background(), key, oauthClient(fake))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Refreshed || time.Until(tok.Expiry) < 50*time.Minute {
		t.Fatalf("want a refreshed token valid ~1h, got %+v", tok)
	}
	data, ann := secretData(t, key)
	if data[KeyAccessToken] != tok.AccessToken {
		t.Fatal("the Secret does not hold the access token that was returned")
	}
	if data[KeyRefreshToken] == oldRefresh || data[KeyRefreshToken] == "" {
		t.Fatal("the rotated refresh token was not stored")
	}
	if _, locked := ann[LockAnnotation]; locked {
		t.Fatal("the refresh lock was left on the Secret")
	}
	// A fresh token is used as is: no second refresh.
	again, err := r.Fresh(context.Background(), key, oauthClient(fake))
	if err != nil || again.Refreshed || again.AccessToken != tok.AccessToken {
		t.Fatalf("a fresh token was refreshed again: %+v %v", again, err)
	}
}

// TestConcurrentRefreshesRotateOnce plays two replicas (two Refreshers, each with several
// goroutines) racing to refresh the same Connection.
func TestConcurrentRefreshesRotateOnce(t *testing.T) {
	fake, key, _ := site(t, "race")
	replicas := []*Refresher{
		{Client: k8s, Reader: k8s, Holder: "replica-a"},
		{Client: k8s, Reader: k8s, Holder: "replica-b"},
	}
	var wg sync.WaitGroup
	tokens := make(chan Token, 8)
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := replicas[i%2].Fresh(context.Background(), key, oauthClient(fake))
			if err != nil {
				errs <- err
				return
			}
			tokens <- tok
		}()
	}
	wg.Wait()
	close(tokens)
	close(errs)
	for err := range errs {
		t.Errorf("refresh failed: %v", err)
	}
	var access string
	for tok := range tokens {
		if access == "" {
			access = tok.AccessToken
		}
		if tok.AccessToken != access {
			t.Error("callers got different access tokens: more than one rotation")
		}
	}
	var refreshes, failures int
	for _, g := range fake.OAuthGrants() {
		if g.GrantType == "refresh_token" {
			refreshes++
			if !g.OK {
				failures++
			}
		}
	}
	if refreshes != 1 || failures != 0 {
		t.Fatalf("want exactly one successful rotation, got %d refreshes, %d failed", refreshes, failures)
	}
	data, _ := secretData(t, key)
	if data[KeyAccessToken] != access {
		t.Fatal("the Secret does not hold the newest tokens")
	}
	// The stored refresh token is the live one: it rotates once more.
	if _, err := replicas[0].Fresh(context.Background(), key, oauthClient(fake)); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshOutlivesItsCaller: a caller whose deadline (100 ms, as a search source's
// can be) ends while the token endpoint is still answering (300 ms) gets its own
// deadline back, but the refresh goes on: the token endpoint rotated the refresh token,
// and the new one must reach the Secret, or the Connection is dead.
func TestRefreshOutlivesItsCaller(t *testing.T) {
	fake, key, oldRefresh := site(t, "outlive")
	fake.SetTokenDelay(300 * time.Millisecond)
	r := &Refresher{Client: k8s, Reader: k8s, Holder: "replica-a"}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Fresh(ctx, key, oauthClient(fake))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Fresh past its caller's deadline: %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 250*time.Millisecond {
		t.Errorf("the caller waited %s for a refresh its deadline had given up on", waited)
	}
	stored := waitStored(t, fake, key, oldRefresh)
	if fake.RefreshTokenLive(oldRefresh) {
		t.Fatal("the old refresh token is still live: no rotation happened")
	}

	// The next caller uses the stored tokens, and the next refresh works.
	tok, err := r.Fresh(context.Background(), key, oauthClient(fake))
	if err != nil || tok.Refreshed || tok.AccessToken != stored[KeyAccessToken] {
		t.Fatalf("after the detached refresh: %+v %v, want the stored token as is", tok, err)
	}
	expire(t, key)
	if tok, err := r.Fresh(context.Background(), key, oauthClient(fake)); err != nil || !tok.Refreshed {
		t.Fatalf("the refresh after a detached one: %+v %v", tok, err)
	}
	wantGrants(t, fake, 2)
}

// TestCallersJoinOneRefresh: callers that need a refresh while one is in flight wait for
// it rather than start their own; one that gives up does not end it for the others.
func TestCallersJoinOneRefresh(t *testing.T) {
	fake, key, oldRefresh := site(t, "join")
	fake.SetTokenDelay(300 * time.Millisecond)
	r := &Refresher{Client: k8s, Reader: k8s, Holder: "replica-a"}
	impatient := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := r.Fresh(ctx, key, oauthClient(fake))
		impatient <- err
	}()
	time.Sleep(50 * time.Millisecond) // the impatient caller starts the refresh
	var wg sync.WaitGroup
	tokens := make([]Token, 3)
	errs := make([]error, 3)
	for i := range tokens {
		wg.Go(func() { tokens[i], errs[i] = r.Fresh(context.Background(), key, oauthClient(fake)) })
	}
	wg.Wait()
	if err := <-impatient; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the impatient caller: %v, want context.DeadlineExceeded", err)
	}
	for i := range tokens {
		if errs[i] != nil || !tokens[i].Refreshed || tokens[i].AccessToken != tokens[0].AccessToken {
			t.Errorf("caller %d: %+v %v, want the one refreshed token", i, tokens[i], errs[i])
		}
	}
	stored := waitStored(t, fake, key, oldRefresh)
	if stored[KeyAccessToken] != tokens[0].AccessToken {
		t.Error("the Secret does not hold the token the callers got")
	}
	wantGrants(t, fake, 1)
}

// waitStored waits until the Secret holds a refresh token other than old that the fake
// would accept, with no lock left, and returns the Secret's data.
func waitStored(t *testing.T, fake *atlassiantest.Server, key client.ObjectKey, old string) map[string]string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		data, ann := secretData(t, key)
		rt := data[KeyRefreshToken]
		if rt != old && fake.RefreshTokenLive(rt) && ann[LockAnnotation] == "" {
			return data
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Secret does not hold the newly issued refresh token (still the old one: %t, live: %t, lock %q)",
				rt == old, fake.RefreshTokenLive(rt), ann[LockAnnotation])
		}
	}
}

// expire moves the Secret's expiry into the past (as the admin), so the next Fresh
// refreshes.
func expire(t *testing.T, key client.ObjectKey) {
	t.Helper()
	var s corev1.Secret
	if err := admin.Get(context.Background(), key, &s); err != nil {
		t.Fatal(err)
	}
	s.Data[KeyExpiry] = []byte(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	if err := admin.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
}

// wantGrants checks that the token endpoint saw exactly n refreshes, none refused.
func wantGrants(t *testing.T, fake *atlassiantest.Server, n int) {
	t.Helper()
	var refreshes int
	for _, g := range fake.OAuthGrants() {
		if g.GrantType != "refresh_token" {
			continue
		}
		refreshes++
		if !g.OK {
			t.Errorf("a refresh was refused (%s): a spent refresh token was used", g.Error)
		}
	}
	if refreshes != n {
		t.Errorf("%d refreshes, want %d", refreshes, n)
	}
}

func TestRevokedRefreshTokenIsRejected(t *testing.T) {
	fake, key, refresh := site(t, "revoked")
	fake.RevokeRefreshToken(refresh)
	r := &Refresher{Client: k8s, Reader: k8s, Holder: "replica-a"}
	_, err := r.Fresh(context.Background(), key, oauthClient(fake))
	if !errors.Is(err, ErrRefreshRejected) {
		t.Fatalf("want ErrRefreshRejected, got %v", err)
	}
	if _, ann := secretData(t, key); ann[LockAnnotation] != "" {
		t.Fatal("the lock was left behind after a failed refresh")
	}
}

func TestStaleLockOfADeadReplicaIsTakenOver(t *testing.T) {
	fake, key, _ := site(t, "stale")
	var s corev1.Secret
	if err := k8s.Get(context.Background(), key, &s); err != nil {
		t.Fatal(err)
	}
	s.Annotations = map[string]string{LockAnnotation: "replica-dead " + time.Now().Add(-time.Second).UTC().Format(time.RFC3339)}
	if err := k8s.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	r := &Refresher{Client: k8s, Reader: k8s, Holder: "replica-a"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tok, err := r.Fresh(ctx, key, oauthClient(fake)); err != nil || !tok.Refreshed {
		t.Fatalf("want a refresh past a stale lock, got %+v %v", tok, err)
	}
}

func TestErrorsCarryNoSecrets(t *testing.T) {
	fake, key, refresh := site(t, "nosecrets")
	fake.RevokeRefreshToken(refresh)
	bad := oauthClient(fake)
	bad.ClientSecret = "wrong-" + clientSecret
	r := &Refresher{Client: k8s, Reader: k8s, Holder: "replica-a"}
	_, err := r.Fresh(context.Background(), key, bad)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, secret := range []string{refresh, clientSecret} {
		if contains(err.Error(), secret) {
			t.Fatalf("error %q carries a secret", err)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
