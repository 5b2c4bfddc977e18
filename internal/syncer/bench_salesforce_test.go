package syncer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/salesforce"
	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
	"github.com/unified-connectors/connector-operator/internal/egress"
	"github.com/unified-connectors/connector-operator/internal/vendorhttp"
)

// BenchmarkSyncPipelineSalesforce is BenchmarkSyncPipeline with a Salesforce source: three
// sObject types of 4,000 records each from the fake org, through the client credentials
// grant, next to the vendor-bound rate of the same Changes walk.
func BenchmarkSyncPipelineSalesforce(b *testing.B) {
	types := []string{"Account", "Contact", "Case"}
	const perType = 4000
	for _, latency := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run(fmt.Sprintf("vendorLatency=%s", latency), func(b *testing.B) {
			controlPlane(b)
			ctx := context.Background()
			org := salesforcetest.NewServer()
			b.Cleanup(org.Close)
			org.SetAPILimit(1 << 30)
			const clientID, clientSecret = "3MVG9bench.app", "bench-secret-0123456789"
			org.AddClient(salesforcetest.Client{ID: clientID, Secret: clientSecret, RunAs: salesforcetest.DefaultUser().ID})
			for _, typ := range types {
				org.AddRecords(typ, perType, nil)
			}
			// Salesforce stamps to the second and a walk leaves its current second to the
			// next one (a record may still be committed in it): let the seed's second pass.
			time.Sleep(1100 * time.Millisecond)
			org.SetFault(salesforcetest.Fault{Latency: latency})
			startManager(b)

			cnr := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "salesforce-" + rand.String(6)},
				Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeSalesforce, BaseURL: v1alpha1.EndpointURL(org.URL()),
					AuthMethods: []v1alpha1.AuthMethod{v1alpha1.AuthMethodClientCredentials},
					RateLimit:   v1alpha1.RateLimitSpec{RequestsPerSecond: 500, Burst: 500}}}
			must(b, k8s.Create(ctx, cnr))
			b.Cleanup(func() { _ = k8s.Delete(context.Background(), cnr) })
			ns := "sync-sf-" + rand.String(6)
			must(b, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
			must(b, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
				StringData: map[string]string{"clientID": clientID, "clientSecret": clientSecret}}))

			vendorRate := salesforceVendorRate(b, org, types)
			measurePipeline(b, len(types)*perType, vendorRate, func(sinkURL string) client.ObjectKey {
				conn := &v1alpha1.Connection{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "conn-" + rand.String(6)},
					Spec: v1alpha1.ConnectionSpec{
						ConnectorRef: v1alpha1.ConnectorReference{Name: cnr.Name},
						Auth: v1alpha1.AuthSpec{Method: v1alpha1.AuthMethodClientCredentials,
							SecretRef: v1alpha1.SecretReference{Name: "creds"}},
						Scope: v1alpha1.ScopeSpec{Containers: types},
						Sync: &v1alpha1.SyncSpec{Interval: &metav1.Duration{Duration: time.Hour},
							Sink: &v1alpha1.SinkSpec{URL: v1alpha1.URL(sinkURL), BatchSize: 100}},
					},
				}
				must(b, k8s.Create(ctx, conn))
				b.Cleanup(func() { _ = k8s.Delete(context.Background(), conn) })
				return client.ObjectKeyFromObject(conn)
			})
		})
	}
}

// salesforceVendorRate walks every type's Changes directly, in parallel, and returns the
// records per second the fake org serves.
func salesforceVendorRate(b *testing.B, org *salesforcetest.Server, types []string) float64 {
	b.Helper()
	access, _ := org.IssueTokens("3MVG9bench.app", salesforcetest.DefaultUser().ID)
	vc, err := salesforce.Provider{}.NewClient(connectors.Config{
		BaseURL: org.URL(),
		HTTP:    vendorhttp.New(vendorhttp.Options{ConnectorType: "salesforce", RequestsPerSecond: 500, Burst: 500, Egress: egress.Vendor.WithAllowInsecure(true)}),
		Credentials: connectors.Credentials{Method: connectors.AuthClientCredentials, Token: access,
			Values: map[string]string{salesforce.TokenFieldInstanceURL: org.URL()}},
	})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var items int
	start := time.Now()
	for _, typ := range types {
		wg.Go(func() {
			cursor := ""
			for {
				page, err := vc.Changes(context.Background(), connectors.ChangeQuery{
					Container: connectors.Container{Key: typ}, Cursor: cursor, Limit: 100})
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				items += len(page.Items)
				mu.Unlock()
				if page.NextCursor == "" {
					return
				}
				cursor = page.NextCursor
			}
		})
	}
	wg.Wait()
	return float64(items) / time.Since(start).Seconds()
}
