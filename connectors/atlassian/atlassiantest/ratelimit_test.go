package atlassiantest_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	fake, _ := newOAuthFake(t)
	_, refresh, _ := fake.IssueOAuthTokens(clientID, alice.ID)
	url := fake.URL() + "/rest/api/3/myself"
	fake.SetRateLimit(5)

	// A burst of 5 goes through, the last one warned; then 429s.
	for i := range 5 {
		status, header, _ := get(t, url, "Bearer alice-pat")
		near := header.Get("X-RateLimit-NearLimit")
		if status != 200 || (i == 0 && near != "") || (i == 4 && near != "true") {
			t.Errorf("request %d: %d X-RateLimit-NearLimit %q", i, status, near)
		}
	}
	for range 2 {
		before := time.Now()
		status, header, body := get(t, url, "Bearer alice-pat")
		secs, err := strconv.Atoi(header.Get("Retry-After"))
		reset, rerr := time.Parse(time.RFC3339, header.Get("X-RateLimit-Reset"))
		if status != 429 || err != nil || secs < 1 || rerr != nil ||
			reset.Before(before.Truncate(time.Second)) || reset.After(before.Add(2*time.Second)) {
			t.Fatalf("over the limit: %d Retry-After %q X-RateLimit-Reset %q, want 429, ≥1 and an instant within a second",
				status, header.Get("Retry-After"), header.Get("X-RateLimit-Reset"))
		}
		if msgs, _ := body["errorMessages"].([]any); len(msgs) != 1 {
			t.Errorf("429 body %v, want Jira's ErrorCollection", body)
		}
	}
	if _, _, body := get(t, fake.URL()+"/wiki/api/v2/spaces", "Bearer alice-pat"); body["errors"] == nil {
		t.Errorf("Confluence v2 429 body %v, want its errors array", body)
	}
	if reqs := fake.Requests(); len(reqs) != 8 || reqs[5].Status != 429 || reqs[7].Status != 429 {
		t.Errorf("Requests() = %+v, want the 429s recorded", reqs)
	}

	// The authorization server is not limited.
	if status, body := postToken(t, fake, "application/x-www-form-urlencoded", refreshForm(refresh), nil); status != 200 {
		t.Errorf("token endpoint while the API is limited: %d %v", status, body)
	}

	// A client that honours Retry-After gets through on its next try.
	for attempt := 0; ; attempt++ {
		status, header, _ := get(t, url, "Bearer alice-pat")
		if status == 200 {
			break
		}
		if attempt == 2 {
			t.Fatalf("still %d after honouring Retry-After twice", status)
		}
		secs, _ := strconv.Atoi(header.Get("Retry-After"))
		time.Sleep(time.Duration(secs) * time.Second)
	}

	fake.SetRateLimit(0)
	for range 20 {
		if status, _, _ := get(t, url, "Bearer alice-pat"); status != 200 {
			t.Fatalf("rate limit off: %d", status)
		}
	}
}

func TestRateLimitConcurrentBurst(t *testing.T) {
	fake := newFake(t)
	fake.SetRateLimit(5)
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
	)
	for range 20 {
		wg.Go(func() {
			resp, err := send(t, http.DefaultClient, fake.URL()+"/rest/api/3/myself")
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			counts[resp.StatusCode]++
		})
	}
	wg.Wait()
	// 5 from the bucket, perhaps one more refilled while the burst ran.
	if counts[200] < 5 || counts[200] > 6 || counts[200]+counts[429] != 20 {
		t.Errorf("statuses %v, want 5 or 6 answered and the rest 429", counts)
	}
}
