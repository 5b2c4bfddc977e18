package contract_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
)

// acme is a vendor the operator has never heard of: a provider registered by this test
// alone, over its own fake HTTP service. It serves probing, reading and a change feed, and
// nothing else (no create, comments or search), with its own Secret key and item kind.
const (
	acmeType   = "acme"
	acmeKind   = "thing"
	acmeKeyKey = "apiKey" // the Secret key of its one auth method, which no other vendor uses
)

func init() { connectors.Register(acmeProvider{}) }

type acmeProvider struct{}

func (acmeProvider) Type() string { return acmeType }

func (acmeProvider) Validate(cfg connectors.Config) ([]string, error) {
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("acme: baseURL: %w", err)
	}
	return nil, nil
}

func (acmeProvider) NewClient(cfg connectors.Config) (connectors.Client, error) {
	key := cfg.Credentials.Values[acmeKeyKey]
	return &acmeClient{base: strings.TrimRight(cfg.BaseURL, "/"), key: key, http: cfg.HTTP}, nil
}

func (acmeProvider) Describe() connectors.Description {
	return connectors.Description{
		Auth:         []connectors.AuthSpec{{Method: connectors.AuthPAT, SecretKeys: []string{acmeKeyKey}}},
		ItemKinds:    []string{acmeKind},
		Capabilities: connectors.Capabilities{ChangeFeed: true, Snapshots: true},
	}
}

// acmeClient is the provider's client: every call goes through cfg.HTTP, the operator's
// vendor client (rate limit, retries, egress guard).
type acmeClient struct {
	base, key string
	http      connectors.Doer
}

type thing struct {
	ID      string    `json:"id"`
	Box     string    `json:"box"`
	Title   string    `json:"title"`
	Body    string    `json:"body"`
	Updated time.Time `json:"updated"`
}

func (c *acmeClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Api-Key", c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: acmeType, Op: "GET " + req.URL.Path, Reason: "no answer", Err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return &connectors.Error{Kind: connectors.KindForStatus(resp.StatusCode), Vendor: acmeType, Op: "GET " + req.URL.Path, Status: resp.StatusCode, Reason: "refused"}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func unsupported(op string) error {
	return &connectors.Error{Kind: connectors.KindUnsupported, Vendor: acmeType, Op: op, Reason: "acme cannot do this"}
}

func (c *acmeClient) Identity(ctx context.Context) (connectors.Identity, error) {
	var me struct{ ID, Name string }
	if err := c.get(ctx, "/api/me", &me); err != nil {
		return connectors.Identity{}, err
	}
	return connectors.Identity{AccountID: me.ID, DisplayName: me.Name}, nil
}

func (c *acmeClient) Containers(ctx context.Context, _ string, _ int) (connectors.Page[connectors.Container], error) {
	var boxes []string
	if err := c.get(ctx, "/api/boxes", &boxes); err != nil {
		return connectors.Page[connectors.Container]{}, err
	}
	var page connectors.Page[connectors.Container]
	for _, b := range boxes {
		page.Items = append(page.Items, connectors.Container{ID: b, Key: b, Name: "Box " + b})
	}
	return page, nil
}

func (c *acmeClient) item(t thing) connectors.Item {
	return connectors.Item{ID: t.ID, Key: t.ID, Kind: acmeKind, Title: t.Title, Text: t.Body,
		URL: c.base + "/things/" + t.ID, Container: t.Box, CreatedAt: t.Updated, UpdatedAt: t.Updated, Type: acmeType}
}

// things reads the box's things updated at or after since, oldest first, from offset.
func (c *acmeClient) things(ctx context.Context, box string, since time.Time, cursor string, limit int) (connectors.Page[connectors.Item], error) {
	var all []thing
	q := url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}}
	if err := c.get(ctx, "/api/boxes/"+url.PathEscape(box)+"/things?"+q.Encode(), &all); err != nil {
		return connectors.Page[connectors.Item]{}, err
	}
	from, _ := strconv.Atoi(cursor)
	if limit <= 0 {
		limit = 50
	}
	var page connectors.Page[connectors.Item]
	for i := from; i < len(all) && i < from+limit; i++ {
		page.Items = append(page.Items, c.item(all[i]))
	}
	if from+limit < len(all) {
		page.NextCursor = strconv.Itoa(from + limit)
	}
	return page, nil
}

func (c *acmeClient) Items(ctx context.Context, q connectors.ItemQuery) (connectors.Page[connectors.Item], error) {
	return c.things(ctx, q.Container, q.UpdatedSince, q.Cursor, q.Limit)
}

func (c *acmeClient) Item(ctx context.Context, id string) (connectors.Item, error) {
	var t thing
	if err := c.get(ctx, "/api/things/"+url.PathEscape(id), &t); err != nil {
		return connectors.Item{}, err
	}
	return c.item(t), nil
}

func (c *acmeClient) Comments(context.Context, string, string, int) (connectors.Page[connectors.Comment], error) {
	return connectors.Page[connectors.Comment]{}, unsupported("comments")
}

func (c *acmeClient) Search(context.Context, connectors.SearchQuery) (connectors.Page[connectors.Item], error) {
	return connectors.Page[connectors.Item]{}, unsupported("search")
}

func (c *acmeClient) Create(context.Context, connectors.NewItem) (connectors.Item, error) {
	return connectors.Item{}, unsupported("create")
}

func (c *acmeClient) Changes(ctx context.Context, q connectors.ChangeQuery) (connectors.Page[connectors.Item], error) {
	return c.things(ctx, q.Container.Key, q.Since, q.Cursor, q.Limit)
}

func (c *acmeClient) LiveIDs(ctx context.Context, box connectors.Container, cursor string) (connectors.Page[string], error) {
	page, err := c.things(ctx, box.Key, time.Time{}, cursor, 500)
	ids := connectors.Page[string]{NextCursor: page.NextCursor}
	for _, it := range page.Items {
		ids.Items = append(ids.Items, it.ID)
	}
	return ids, err
}

// acmeService is the vendor's fake HTTP service.
type acmeService struct {
	*httptest.Server
	key string

	mu     sync.Mutex
	things []thing
	calls  map[string]int // path → requests
}

func newAcmeService(key string, boxes []string, perBox int) *acmeService {
	s := &acmeService{key: key, calls: map[string]int{}}
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	for _, b := range boxes {
		for i := range perBox {
			s.things = append(s.things, thing{ID: fmt.Sprintf("%s-%03d", b, i), Box: b,
				Title: fmt.Sprintf("Thing %d of %s", i, b), Body: "acme body", Updated: start.Add(time.Duration(i) * time.Second)})
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]string{"id": "acme-user-1", "name": "Acme Bot"})
	})
	mux.HandleFunc("GET /api/boxes", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, boxes) })
	mux.HandleFunc("GET /api/boxes/{box}/things", func(w http.ResponseWriter, r *http.Request) {
		since, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("since"))
		if err != nil {
			http.Error(w, "bad since", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		var out []thing
		for _, t := range s.things {
			if t.Box == r.PathValue("box") && !t.Updated.Before(since) {
				out = append(out, t)
			}
		}
		s.mu.Unlock()
		slices.SortFunc(out, func(a, b thing) int {
			if c := a.Updated.Compare(b.Updated); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /api/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, t := range s.things {
			if t.ID == r.PathValue("id") {
				writeJSON(w, t)
				return
			}
		}
		http.NotFound(w, r)
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[r.URL.Path]++
		s.mu.Unlock()
		if r.Header.Get("X-Api-Key") != s.key {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
