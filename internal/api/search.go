package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

// Search source statuses.
const (
	sourceOK      = "ok"
	sourceError   = "error"
	sourceTimeout = "timeout"
)

// searchView is the answer of GET /api/v1/search.
type searchView struct {
	Items      []connectors.Item `json:"items"`
	NextCursor string            `json:"nextCursor,omitempty"`
	Sources    []sourceView      `json:"sources"`
}

// sourceView reports how one Connection answered.
type sourceView struct {
	Namespace     string `json:"namespace"`
	Name          string `json:"name"`
	Status        string `json:"status"`
	Code          string `json:"code,omitempty"`
	Message       string `json:"message,omitempty"`
	Count         int    `json:"count"`
	LatencyMillis int64  `json:"latencyMillis"`
}

// source is one Connection a search reads, and what it answered.
type source struct {
	conn *v1alpha1.Connection
	at   sourceCursor // where this page starts

	view   sourceView
	items  []connectors.Item // the page, less the items returned before
	scores []float64         // the relevance of each item
	next   string            // the vendor's cursor after the page
	size   int               // the page size the page was read with
}

func (src *source) key() string { return src.conn.Namespace + "/" + src.conn.Name }

// scoreAt is the relevance of the source's i-th item.
func (src *source) scoreAt(i int) float64 {
	if i < len(src.scores) {
		return src.scores[i]
	}
	return 0
}

// search answers GET /api/v1/search: it fans out to every Connection the caller may
// read, each with its own deadline, merges what came back in time, and reports each
// source. A Connection the API may not serve (notReady: its credential is not valid for
// its current generation, or it is not admitted; a failing sink does not count) is
// reported as an error source, CONNECTION_NOT_READY, without a vendor call. A slow or failing source never fails or delays the answer beyond
// SearchSourceTimeout.
func (s *Server) search(w http.ResponseWriter, r *http.Request, rq *request) error {
	tenant, aerr := tenantOf(r)
	if aerr != nil {
		return aerr
	}
	sr, aerr := parseSearch(r.URL.RawQuery, tenant)
	if aerr != nil {
		return aerr
	}
	if len(sr.namespaces) == 1 {
		rq.namespace = sr.namespaces[0]
	}
	var resume map[string]sourceCursor
	if sr.cursor != "" {
		c, aerr := decodeSearchCursor(sr.cursor, sr.fingerprint())
		if aerr != nil {
			return aerr
		}
		resume = make(map[string]sourceCursor, len(c.Sources))
		for _, sc := range c.Sources {
			resume[sc.Source] = sc
		}
	}
	// Every deadline starts now: queueing for a slot or for authorization counts.
	deadline := s.opts.SearchSourceTimeout
	if sr.timeout > 0 {
		deadline = min(deadline, sr.timeout)
	}
	ctx, cancel := context.WithTimeout(r.Context(), deadline)
	defer cancel()

	sources, err := s.searchSources(ctx, rq, sr, resume)
	if err != nil {
		if ctx.Err() != nil {
			return errorf(CodeTimeout, "the search could not be authorized within its deadline")
		}
		return err
	}
	s.fanOut(ctx, sr, sources)
	writeOK(w, http.StatusOK, merge(sr, sources))
	return nil
}

// searchSources lists the Connections the search reads: those in the namespaces asked
// (all by default) that match connections= and kind=, that the caller may read
// (get connections/data), and, when resuming, that the cursor names. Connections the
// caller may not read are dropped without a trace: the answer never mentions them.
func (s *Server) searchSources(ctx context.Context, rq *request, sr searchRequest, resume map[string]sourceCursor) ([]*source, error) {
	// The cache's own objects, not copies: a search over 10,000 Connections would
	// otherwise copy every one of them, however few it reads. Nothing below (nor
	// ClientFor, nor the sources) modifies a Connection.
	var conns []v1alpha1.Connection
	if len(sr.namespaces) == 0 {
		var list v1alpha1.ConnectionList
		if err := s.deps.Reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		conns = list.Items
	} else {
		for _, ns := range sr.namespaces {
			var list v1alpha1.ConnectionList
			if err := s.deps.Reader.List(ctx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
				return nil, err
			}
			conns = append(conns, list.Items...)
		}
	}
	var candidates []*source
	for i := range conns {
		c := &conns[i]
		if len(sr.connections) > 0 && !slices.ContainsFunc(sr.connections, func(f connectionFilter) bool { return f.matches(c.Namespace, c.Name) }) {
			continue
		}
		if !searchable(c, sr.kind) {
			continue
		}
		src := &source{conn: c, at: sourceCursor{Source: c.Namespace + "/" + c.Name}}
		if resume != nil {
			at, ok := resume[src.key()]
			if !ok {
				continue // exhausted on an earlier page, or not part of this search
			}
			src.at = at
		}
		candidates = append(candidates, src)
	}
	readable, err := s.readable(ctx, rq.caller, candidates)
	if err != nil {
		return nil, err
	}
	sort.Slice(readable, func(i, j int) bool { return readable[i].key() < readable[j].key() })
	return readable, nil
}

// searchable reports whether a search for kind (any when empty) reads c: its connector
// type offers vendor search and holds items of that kind. A Connection not yet
// reconciled (no status.type) is kept; it is not Ready, so its source says so.
func searchable(c *v1alpha1.Connection, kind string) bool {
	desc, ok := connectors.Describe(string(c.Status.Type))
	if !ok {
		return true
	}
	return desc.Capabilities.Search && (kind == "" || desc.HasKind(kind))
}

// maxNameChecks bounds the per-Connection reviews of one search (see readable).
const maxNameChecks = 256

// readable keeps the sources the caller may read (get connections/data). It asks
// cluster-wide first, then per namespace, then per Connection (RBAC resourceNames), so
// that the common cases take one or a few (cached) reviews whatever the number of
// Connections. Per-Connection reviews are bounded per search (maxNameChecks, in name
// order): a search cannot make the API server review thousands of names. Broad searches
// need namespace-wide grants; narrow ones (connections=) honour per-Connection grants.
func (s *Server) readable(ctx context.Context, c *caller, candidates []*source) ([]*source, error) {
	if len(candidates) == 0 {
		return nil, nil
	}
	data := access{verb: "get", resource: resourceConnections, subresource: subresourceData}
	if ok, err := s.auth.allowed(ctx, c, data); err != nil || ok {
		return candidates, err
	}
	byNS := map[string][]*source{}
	for _, src := range candidates {
		byNS[src.conn.Namespace] = append(byNS[src.conn.Namespace], src)
	}
	var (
		mu       sync.Mutex
		out      []*source
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 16)
	)
	check := func(a access, keep []*source) bool {
		sem <- struct{}{}
		defer func() { <-sem }()
		ok, err := s.auth.allowed(ctx, c, a)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if ok {
			out = append(out, keep...)
		}
		return ok
	}
	var denied []*source
	for ns, srcs := range byNS {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := data
			a.namespace = ns
			if !check(a, srcs) {
				mu.Lock()
				denied = append(denied, srcs...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(denied, func(i, j int) bool { return denied[i].key() < denied[j].key() })
	for _, src := range denied[:min(len(denied), maxNameChecks)] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := data
			a.namespace, a.name = src.conn.Namespace, src.conn.Name
			check(a, []*source{src})
		}()
	}
	wg.Wait()
	return out, firstErr
}

// fanOut asks every source at once (bounded by SearchConcurrency per search and by the
// server-wide slots), each within ctx's deadline, and fills in each source's view.
func (s *Server) fanOut(ctx context.Context, sr searchRequest, sources []*source) {
	sem := make(chan struct{}, s.opts.SearchConcurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for _, src := range sources {
		src.view = sourceView{Namespace: src.conn.Namespace, Name: src.conn.Name}
		if err := notReady(src.conn); err != nil {
			src.fail(err, 0)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				src.fail(ctx.Err(), time.Since(start))
				return
			}
			defer func() { <-sem }()
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				src.fail(ctx.Err(), time.Since(start))
				return
			}
			defer func() { <-s.slots }()
			s.ask(ctx, sr, src)
		}()
	}
	wg.Wait()
	for _, src := range sources {
		searchSources.WithLabelValues(src.view.Status).Inc()
	}
}

// ask runs one source's search: one vendor page from the source's cursor, ranked,
// less the items returned on earlier pages.
func (s *Server) ask(ctx context.Context, sr searchRequest, src *source) {
	start := time.Now()
	connector := &v1alpha1.Connector{}
	if err := s.deps.Reader.Get(ctx, client.ObjectKey{Name: src.conn.Spec.ConnectorRef.Name}, connector); err != nil {
		src.fail(errorf(CodeConnectionNotReady, "Connector %q not found", src.conn.Spec.ConnectorRef.Name), time.Since(start))
		return
	}
	vc, err := s.vendorClient(ctx, src.conn, connector)
	if err != nil {
		src.fail(vendorError(ctx, err), time.Since(start))
		return
	}
	// A page partly returned is read again with the size it was first read with, so
	// that it holds the same items in the same order.
	size := sr.limit
	if src.at.Skip > 0 && src.at.Size > 0 {
		size = src.at.Size
	}
	page, err := vc.Search(ctx, connectors.SearchQuery{
		Text:       sr.text,
		Containers: src.conn.Spec.Scope.Containers,
		Filter:     src.conn.Spec.Scope.Filter,
		Kind:       sr.kind,
		Cursor:     src.at.Vendor,
		Limit:      size,
	})
	latency := time.Since(start)
	if err != nil {
		s.forgetOnAuthFailure(vc, err)
		src.fail(vendorError(ctx, err), latency)
		return
	}
	// Score each item once. A vendor whose search is not ranked (Jira orders by update
	// time only) has its page ranked here; a ranked one (Confluence) keeps the vendor's
	// relevance order.
	terms := searchTerms(sr.text)
	items := page.Items
	scores := make([]float64, len(items))
	for i := range items {
		scores[i] = relevance(terms, &items[i])
	}
	if desc, _ := connectors.Describe(string(connector.Spec.Type)); !desc.Capabilities.RankedSearch {
		order := make([]int, len(items))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool {
			return better(scores[order[a]], &items[order[a]], scores[order[b]], &items[order[b]])
		})
		ranked, rankedScores := make([]connectors.Item, len(items)), make([]float64, len(items))
		for i, j := range order {
			ranked[i], rankedScores[i] = items[j], scores[j]
		}
		items, scores = ranked, rankedScores
	}
	if src.at.Skip < len(items) {
		items, scores = items[src.at.Skip:], scores[src.at.Skip:]
	} else {
		items, scores = nil, nil
	}
	for i := range items {
		stamp(src.conn, &items[i])
	}
	src.items, src.scores, src.next, src.size = items, scores, page.NextCursor, size
	src.view.Status, src.view.LatencyMillis = sourceOK, latency.Milliseconds()
}

// fail records a source's failure as a status and a stable code. Messages of vendor
// errors are kept (they carry no credential); anything else is summarised.
func (src *source) fail(err error, latency time.Duration) {
	src.view.LatencyMillis = latency.Milliseconds()
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.code == CodeTimeout, errors.Is(err, context.DeadlineExceeded):
		src.view.Status, src.view.Code, src.view.Message = sourceTimeout, CodeTimeout, "no answer within the search deadline"
	case errors.As(err, &ae):
		src.view.Status, src.view.Code, src.view.Message = sourceError, ae.code, ae.message
	default:
		src.view.Status, src.view.Code, src.view.Message = sourceError, CodeInternal, "internal error"
	}
}

// merge orders what the sources answered and cuts one page. Vendors give no comparable
// relevance scores (Confluence orders by relevance but gives no score; Jira cannot order
// by relevance at all, so ask ranks its pages), so each source keeps its page's order,
// and the sources' next items are compared by a lexical relevance of the query terms in
// title and text, then by update time (newest first). Each source's returned items are
// a prefix of its page, which is what the cursor records.
func merge(sr searchRequest, sources []*source) searchView {
	pos := make([]int, len(sources))
	out := searchView{Items: []connectors.Item{}, Sources: make([]sourceView, 0, len(sources))}
	for len(out.Items) < sr.limit {
		best := -1
		for i, src := range sources {
			if pos[i] >= len(src.items) {
				continue
			}
			if best < 0 || better(src.scoreAt(pos[i]), &src.items[pos[i]], sources[best].scoreAt(pos[best]), &sources[best].items[pos[best]]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		src := sources[best]
		out.Items = append(out.Items, src.items[pos[best]])
		pos[best]++
	}

	var next searchCursor
	more := false
	for i, src := range sources {
		v := src.view
		if v.Status == sourceOK {
			v.Count = pos[i]
			switch {
			case pos[i] < len(src.items):
				// Resume on the same vendor page, past what was returned.
				next.Sources = append(next.Sources, sourceCursor{Source: src.key(), Vendor: src.at.Vendor, Skip: src.at.Skip + pos[i], Size: src.size})
				more = true
			case src.next != "":
				next.Sources = append(next.Sources, sourceCursor{Source: src.key(), Vendor: src.next})
				more = true
			}
		} else {
			// Failed sources are asked again from the same place on the next page.
			next.Sources = append(next.Sources, src.at)
		}
		out.Sources = append(out.Sources, v)
	}
	// Only a source that answered and has more makes a next page: a page of retries of
	// failed sources alone would never end for a source that stays down.
	if more {
		next.Query = sr.fingerprint()
		out.NextCursor = encodeSearchCursor(next)
	}
	return out
}

// better orders two candidate items: more relevant, then newer, then by Connection and
// id for a stable order.
func better(sa float64, a *connectors.Item, sb float64, b *connectors.Item) bool {
	if sa != sb {
		return sa > sb
	}
	if !a.UpdatedAt.Equal(b.UpdatedAt) {
		return a.UpdatedAt.After(b.UpdatedAt)
	}
	if a.Connection != b.Connection {
		if a.Connection.Namespace != b.Connection.Namespace {
			return a.Connection.Namespace < b.Connection.Namespace
		}
		return a.Connection.Name < b.Connection.Name
	}
	return a.ID < b.ID
}

// searchTerms are the distinct lower-case words of a query (at most 32).
func searchTerms(q string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(strings.ToLower(q), func(r rune) bool { return !termChar(r) }) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
		if len(out) == 32 {
			break
		}
	}
	return out
}

func termChar(r rune) bool {
	return r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 127
}

// relevance is the share of query terms found in the title (weight 2) and the text
// (weight 1), in [0, 1].
func relevance(terms []string, it *connectors.Item) float64 {
	if len(terms) == 0 {
		return 0
	}
	title, text := strings.ToLower(it.Title), strings.ToLower(it.Text)
	score := 0
	for _, t := range terms {
		if strings.Contains(title, t) {
			score += 2
		}
		if strings.Contains(text, t) {
			score++
		}
	}
	return float64(score) / float64(3*len(terms))
}
