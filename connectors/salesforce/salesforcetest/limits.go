package salesforcetest

import (
	"fmt"
	"net/http"
)

// defaultAPILimit is the fake org's daily API request allowance (an Enterprise org's base).
const defaultAPILimit = 100000

// limitState counts API requests against the daily allowance; it lives under Server.mu.
type limitState struct {
	usage, max int
}

// SetAPILimit sets the daily API request allowance (at least 1), the M of api-usage=N/M.
func (s *Server) SetAPILimit(limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits.max = max(limit, 1)
}

// SetAPIUsage sets how many API requests the org has used in the last 24 hours, the N of
// api-usage=N/M: set it to the limit and the next request is refused.
func (s *Server) SetAPIUsage(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits.usage = max(n, 0)
}

// APIUsage reports the requests used and the allowance.
func (s *Server) APIUsage() (used, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits.usage, s.limits.max
}

// countRequest counts one API request and reports whether it is within the allowance. It
// sets Sforce-Limit-Info on the answer either way: every REST answer but the versions
// list carries it.
func (s *Server) countRequest(w http.ResponseWriter) bool {
	s.mu.Lock()
	s.limits.usage++
	used, limit := s.limits.usage, s.limits.max
	s.mu.Unlock()
	w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", used, limit))
	return used <= limit
}

// limitsResource answers GET /limits with the allowance (and a few fixed others, as an
// org reports many more).
func (s *Server) limitsResource(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	used, limit := s.APIUsage()
	pair := func(m, remaining int) map[string]int { return map[string]int{"Max": m, "Remaining": remaining} }
	writeJSON(w, http.StatusOK, map[string]any{
		"DailyApiRequests":     pair(limit, max(limit-used, 0)),
		"DailyBulkApiRequests": pair(10000, 10000),
		"DataStorageMB":        pair(1024, 1000),
		"FileStorageMB":        pair(1024, 1024),
	})
}
