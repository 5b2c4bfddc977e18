package atlassiantest_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// send GETs url as Alice (PAT) with client and returns the answer, body unread.
func send(t *testing.T, client *http.Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer alice-pat")
	return client.Do(req)
}

// waitFor polls cond for up to two seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestHangUntilTheClientGivesUp(t *testing.T) {
	fake := newFake(t)
	fake.SetFault(atlassiantest.Fault{Hang: true})
	start := time.Now()
	_, err := send(t, &http.Client{Timeout: 200 * time.Millisecond}, fake.URL()+"/rest/api/3/myself")
	if err == nil || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("hung request: err %v after %s, want a client timeout", err, time.Since(start))
	}
	// The fake notices the client left and records no answer.
	time.Sleep(50 * time.Millisecond)
	if reqs := fake.Requests(); len(reqs) != 1 || reqs[0].Status != 0 {
		t.Errorf("Requests() = %+v, want one unanswered", reqs)
	}
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	for _, f := range []atlassiantest.Fault{{Hang: true}, {Latency: time.Minute}} {
		fake := newFake(t)
		fake.SetFault(f)
		errc := make(chan error, 1)
		go func() {
			resp, err := send(t, http.DefaultClient, fake.URL()+"/rest/api/3/myself")
			if err == nil {
				_ = resp.Body.Close()
			}
			errc <- err
		}()
		waitFor(t, "the request to arrive", func() bool { return fake.CountRequests("/rest/api/3/myself") == 1 })
		closed := make(chan struct{})
		go func() { fake.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(3 * time.Second):
			t.Fatalf("fault %+v: Close still waiting for the held request after 3s", f)
		}
		if err := <-errc; err == nil {
			t.Errorf("fault %+v: the held request got an answer, want none", f)
		}
	}
}

func TestTruncate(t *testing.T) {
	fake := newFake(t)
	fake.SetFault(atlassiantest.Fault{Truncate: true})
	resp, err := send(t, http.DefaultClient, fake.URL()+"/rest/api/3/myself")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated answer: %d, read error %v, want 200 and io.ErrUnexpectedEOF", resp.StatusCode, err)
	}
	if len(body) == 0 || int64(len(body)) >= resp.ContentLength || json.Valid(body) || !strings.HasPrefix(string(body), `{"self":`) {
		t.Errorf("got %d of %d bytes %q, want the first half of the real answer", len(body), resp.ContentLength, body)
	}
}

func TestMalformed(t *testing.T) {
	fake := newFake(t)
	fake.SetFault(atlassiantest.Fault{Malformed: true})
	resp, err := send(t, http.DefaultClient, fake.URL()+"/rest/api/3/myself")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Valid(body) {
		t.Errorf("malformed answer: %d %q %q (%v), want 200 JSON-typed invalid JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body, err)
	}
}

func TestRedirectTo(t *testing.T) {
	fake := newFake(t)
	for _, target := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/"} {
		fake.SetFault(atlassiantest.Fault{RedirectTo: target})
		resp, err := send(t, noRedirects, fake.URL()+"/rest/api/3/myself")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != target {
			t.Errorf("%d Location %q, want 302 to %s", resp.StatusCode, resp.Header.Get("Location"), target)
		}
	}
}

func TestFailNext(t *testing.T) {
	fake := newFake(t)
	url := fake.URL() + "/rest/api/3/myself"
	statuses := func(n int) []int {
		var out []int
		for range n {
			status, _, _ := get(t, url, "Bearer alice-pat")
			out = append(out, status)
		}
		return out
	}
	check := func(what string, got []int, want ...int) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
		}
	}

	fake.FailNext(2, atlassiantest.Fault{Status: 503, RetryAfter: time.Second})
	_, header, _ := get(t, url, "Bearer alice-pat")
	if header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1", header.Get("Retry-After"))
	}
	check("FailNext(2) after one", statuses(3), 503, 200, 200)

	// FailNext comes first, then the standing fault resumes.
	fake.SetFault(atlassiantest.Fault{Status: 500})
	fake.FailNext(1, atlassiantest.Fault{Status: 429})
	check("FailNext over SetFault", statuses(3), 429, 500, 500)

	// ClearFault forgets both, and what FailNext still owed.
	fake.FailNext(5, atlassiantest.Fault{Status: 502})
	fake.ClearFault()
	check("after ClearFault", statuses(2), 200, 200)
}

func TestOAuthTargetedFaults(t *testing.T) {
	fake, conf := newOAuthFake(t)
	_, refresh, _ := fake.IssueOAuthTokens(clientID, alice.ID)
	const form = "application/x-www-form-urlencoded"

	// An API fault leaves the token endpoint alone, and the reverse.
	fake.SetFault(atlassiantest.Fault{Status: 500})
	status, body := postToken(t, fake, form, refreshForm(refresh), nil)
	if status != 200 {
		t.Fatalf("token endpoint under an API fault: %d %v", status, body)
	}
	refresh = body["refresh_token"].(string)
	fake.ClearFault()

	fake.SetFault(atlassiantest.Fault{Status: 503, RetryAfter: 2 * time.Second, OAuth: true})
	if status, _, _ := get(t, fake.URL()+"/rest/api/3/myself", "Bearer alice-pat"); status != 200 {
		t.Errorf("API under a token-endpoint fault: %d", status)
	}
	_, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: refresh}).Token()
	wantRetrieveError(t, err, "temporarily_unavailable", 503)
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response.Header.Get("Retry-After") != "2" {
		t.Errorf("Retry-After %q", re.Response.Header.Get("Retry-After"))
	}
	fake.ClearFault()

	// A refresh refused by a fault did not use the token up: the retry succeeds.
	fake.FailNext(1, atlassiantest.Fault{Status: 503, OAuth: true})
	if status, _ := postToken(t, fake, form, refreshForm(refresh), nil); status != 503 {
		t.Errorf("first refresh: %d, want 503", status)
	}
	if status, body := postToken(t, fake, form, refreshForm(refresh), nil); status != 200 {
		t.Errorf("retried refresh: %d %v, want 200", status, body)
	}
}
