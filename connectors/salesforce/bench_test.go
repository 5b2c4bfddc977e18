package salesforce_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/unified-connectors/connector-operator/connectors/salesforce"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

// BenchmarkChanges walks 5,000 Cases through Changes in pages of 100 (the sync engine's
// page size) with the operator's vendor client, the fake answering after a small latency:
// the connector-level rate a Salesforce sync source can feed the pipeline, next to
// internal/syncer's BenchmarkSyncPipeline for Jira. It reports records per second and
// API calls per 1,000 records (the org's daily allowance is counted in calls).
func BenchmarkChanges(b *testing.B) {
	for _, latency := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run(fmt.Sprintf("vendorLatency=%s", latency), func(b *testing.B) {
			o := newOrg(b)
			const n = 5000
			seed(o, "Case", n, func(int) salesforcetest.Fields {
				return salesforcetest.Fields{"Subject": "Printer on fire", "Description": "Smoke from tray 2", "Status": "Working"}
			})
			o.fake.SetFault(salesforcetest.Fault{Latency: latency})
			doer := vendorhttp.New(vendorhttp.Options{ConnectorType: salesforce.Type, RequestsPerSecond: 500, Burst: 500,
				Egress: egress.Vendor.WithAllowInsecure(true)})
			b.ResetTimer()
			calls := 0
			for range b.N {
				c := o.newClient(doer) // a cold schema cache each run, as after a restart
				before := len(o.fake.Requests())
				items := walkAll(b, func(int) *salesforce.Client { return c }, "Case", time.Time{}, "", 100)
				if len(items) != n {
					b.Fatalf("walked %d records, want %d", len(items), n)
				}
				calls += len(o.fake.Requests()) - before
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(1000*float64(calls)/float64(n*b.N), "api_calls/1000records")
		})
	}
}
