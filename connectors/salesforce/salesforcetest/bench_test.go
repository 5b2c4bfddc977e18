package salesforcetest_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

// BenchmarkQueryWalk walks 5,000 Cases in SystemModstamp, Id order over real HTTP, as a
// backfill of one type does: three requests of up to 2,000 records.
func BenchmarkQueryWalk(b *testing.B) {
	s := salesforcetest.NewServer()
	defer s.Close()
	s.AddClient(salesforcetest.Client{ID: testClientID, Secret: testSecret})
	access, _ := s.IssueTokens(testClientID, salesforcetest.DefaultUser().ID)
	s.AddRecords("Case", 5000, func(int) salesforcetest.Fields {
		return salesforcetest.Fields{"Subject": "Printer on fire", "Status": "Working"}
	})
	get := func(path string) queryResult {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var r queryResult
		if err := decodeJSON(resp, &r); err != nil {
			b.Fatal(err)
		}
		return r
	}
	q := data("/queryAll?q=" + url.QueryEscape("SELECT Id, Subject, Status, SystemModstamp, IsDeleted FROM Case WHERE SystemModstamp >= 2000-01-01T00:00:00Z ORDER BY SystemModstamp, Id"))
	s.SetAPILimit(1 << 30)
	b.ResetTimer()
	for range b.N {
		n := 0
		for r := get(q); ; r = get(r.NextRecordsURL) {
			n += len(r.Records)
			if r.Done {
				break
			}
		}
		if n != 5000 {
			b.Fatalf("walked %d records", n)
		}
	}
}
