package salesforcetest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The API versions the fake serves, /services/data/v31.0 (the oldest Salesforce still
// serves) to /services/data/v67.0 (Summer '26, the newest its documentation lists).
const (
	OldestAPIVersion = "31.0"
	LatestAPIVersion = "67.0"
)

// APIPath is the data API root of version v ("67.0"): /services/data/v67.0.
func APIPath(v string) string { return "/services/data/v" + v }

// splitVersion cuts /services/data/vNN.N/rest into "NN.N" and rest (without its leading
// or trailing slash).
func splitVersion(path string) (version, rest string, ok bool) {
	after, ok := strings.CutPrefix(path, "/services/data/v")
	if !ok {
		return "", "", false
	}
	version, rest, _ = strings.Cut(after, "/")
	return version, strings.Trim(rest, "/"), true
}

// supportedVersion reports whether v is NN.N within the served range.
func supportedVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok || minor != "0" {
		return false
	}
	n, err := strconv.Atoi(major)
	oldest, _ := strconv.Atoi(strings.TrimSuffix(OldestAPIVersion, ".0"))
	latest, _ := strconv.Atoi(strings.TrimSuffix(LatestAPIVersion, ".0"))
	return err == nil && n >= oldest && n <= latest && strconv.Itoa(n) == major
}

// versions answers GET /services/data/: every served version, oldest first. It needs no
// session and does not count against the API limit.
func (s *Server) versions(w http.ResponseWriter, _ *http.Request) {
	oldest, _ := strconv.Atoi(strings.TrimSuffix(OldestAPIVersion, ".0"))
	latest, _ := strconv.Atoi(strings.TrimSuffix(LatestAPIVersion, ".0"))
	out := make([]map[string]string, 0, latest-oldest+1)
	for n := oldest; n <= latest; n++ {
		v := fmt.Sprintf("%d.0", n)
		out = append(out, map[string]string{"label": releaseLabel(n), "url": APIPath(v), "version": v})
	}
	writeJSON(w, http.StatusOK, out)
}

// releaseLabel names the release of API version n (three releases a year; 62.0 is
// Winter '25).
func releaseLabel(n int) string {
	k := n - 62
	year := 25 + floorDiv(k, 3)
	season := []string{"Winter", "Spring", "Summer"}[((k%3)+3)%3]
	return fmt.Sprintf("%s '%02d", season, year)
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// api serves /services/data/vNN.N/...: session first (401 INVALID_SESSION_ID), then the
// daily allowance (403 REQUEST_LIMIT_EXCEEDED), then the resource.
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	v, rest, ok := splitVersion(r.URL.Path)
	if !ok || !supportedVersion(v) {
		writeErrors(w, http.StatusNotFound, codeNotFound, msgNotFound)
		return
	}
	s.mu.Lock()
	u, live := s.sessionLocked(bearer(r))
	s.mu.Unlock()
	if !live {
		writeErrors(w, http.StatusUnauthorized, codeInvalidSession, msgSessionExpired)
		return
	}
	if !s.countRequest(w) {
		writeErrors(w, http.StatusForbidden, codeRequestLimit, msgRequestLimit)
		return
	}
	r = withUser(r, u)
	seg := strings.Split(rest, "/")
	if rest == "" {
		seg = nil
	}
	switch {
	case len(seg) == 0:
		if !allowMethods(w, r, http.MethodGet) {
			return
		}
		root := APIPath(v)
		res := map[string]string{}
		for _, k := range []string{"sobjects", "query", "queryAll", "search", "limits"} {
			res[k] = root + "/" + k
		}
		writeJSON(w, http.StatusOK, res)
	case seg[0] == "sobjects":
		s.sobjects(w, r, v, seg[1:])
	case seg[0] == "query" || seg[0] == "queryAll":
		if !allowMethods(w, r, http.MethodGet) {
			return
		}
		all := seg[0] == "queryAll"
		switch len(seg) {
		case 1:
			s.runQuery(w, r, v, all)
		case 2:
			s.moreResults(w, r, seg[0], seg[1])
		default:
			writeErrors(w, http.StatusNotFound, codeNotFound, msgNotFound)
		}
	case seg[0] == "search" && len(seg) == 1:
		if !allowMethods(w, r, http.MethodGet) {
			return
		}
		s.search(w, r, v)
	case seg[0] == "limits" && len(seg) == 1:
		s.limitsResource(w, r)
	default:
		writeErrors(w, http.StatusNotFound, codeNotFound, msgNotFound)
	}
}

// allowMethods answers 405 METHOD_NOT_ALLOWED unless r's method is one of methods (HEAD
// goes with GET).
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
			return true
		}
	}
	allowed := strings.Join(methods, ",")
	w.Header().Set("Allow", allowed)
	writeErrors(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("HTTP Method '%s' not allowed. Allowed are %s", r.Method, allowed))
	return false
}
