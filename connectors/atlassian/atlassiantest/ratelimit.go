package atlassiantest

import (
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// nearLimitShare is the share of the burst below which successful answers carry
// X-RateLimit-NearLimit: true, as Atlassian warns below 20% left.
const nearLimitShare = 0.2

// SetRateLimit limits the API (not /authorize or /oauth/token) to perSecond requests a
// second, over all accounts and credentials: a token bucket of perSecond tokens (at
// least 1), full at first, refilled at perSecond a second. A request over the limit gets
// 429 with the API family's error body, Retry-After (whole seconds, at least 1, until
// the bucket holds a token) and X-RateLimit-Reset (that instant, RFC 3339). 0 or less
// turns the limit off. Each call starts a full bucket.
func (s *Server) SetRateLimit(perSecond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limiter = nil
	if perSecond > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(perSecond), perSecond)
	}
}

// admit takes a token for an API request and reports true, or answers 429 and reports
// false. It marks rec to warn a successful answer when the bucket is nearly empty.
func (s *Server) admit(rec *statusRecorder, r *http.Request) bool {
	s.mu.Lock()
	lim, now := s.limiter, time.Now()
	allowed, wait := true, time.Duration(0)
	if lim != nil {
		// Under s.mu, so that what TokensAt says holds for AllowN and the wait.
		if allowed = lim.AllowN(now, 1); allowed {
			rec.nearLimit = lim.TokensAt(now) < nearLimitShare*float64(lim.Burst())
		} else {
			wait = time.Duration((1 - lim.TokensAt(now)) / float64(lim.Limit()) * float64(time.Second))
		}
	}
	s.mu.Unlock()
	if allowed {
		return true
	}
	// Round the reset instant up to the second RFC 3339 shows, so that a client that
	// waits until it is never early.
	reset := now.Add(wait)
	if t := reset.Truncate(time.Second); !t.Equal(reset) {
		reset = t.Add(time.Second)
	}
	rec.Header().Set("Retry-After", strconv.FormatInt(int64(max(ceilSeconds(wait), 1)), 10))
	rec.Header().Set("X-RateLimit-Reset", reset.UTC().Format(time.RFC3339))
	writeError(rec, r, http.StatusTooManyRequests, faultMessage(http.StatusTooManyRequests))
	return false
}
