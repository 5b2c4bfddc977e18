package jira

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

// searchPageJSON is a real search/jql answer of the fake: 100 issues with the fields an
// Item needs and ADF descriptions (paragraphs, mentions, emoji, lists, code, links).
func searchPageJSON(b *testing.B) []byte {
	b.Helper()
	fake := atlassiantest.NewServer()
	b.Cleanup(fake.Close)
	fake.AddAccount(atlassiantest.Account{ID: "acc", DisplayName: "Bench", Email: "bench@example.com", TimeZone: "Australia/Sydney", APIToken: "t"})
	fake.SeedJira(atlassiantest.JiraSeed{Projects: 1, IssuesPerProject: 100, Seed: 1, Start: time.Date(2024, 10, 5, 14, 0, 0, 0, time.UTC)})
	body, _ := json.Marshal(cloudSearchBody{JQL: "project = PRJA ORDER BY updated ASC", Fields: itemFields, MaxResults: 100})
	req, _ := http.NewRequest(http.MethodPost, fake.URL()+cloudSearchPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("bench@example.com", "t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("search: %d %v", resp.StatusCode, err)
	}
	return raw
}

// BenchmarkDecodeSearchPage decodes a page of 100 issues into the connector's structs
// and normalizes them to Items (ADF descriptions to text included): the per-page CPU
// cost of a sync.
func BenchmarkDecodeSearchPage(b *testing.B) {
	raw := searchPageJSON(b)
	c, err := New(connectors.Config{BaseURL: "https://acme.atlassian.net",
		Credentials: atlassian.APITokenCredentials("e", "t")})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var page searchJSON
		if err := json.Unmarshal(raw, &page); err != nil {
			b.Fatal(err)
		}
		items, err := c.items("op", page.Issues)
		if err != nil || len(items) != 100 {
			b.Fatalf("%d items, %v", len(items), err)
		}
	}
}
