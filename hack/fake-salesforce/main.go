// Command fake-salesforce serves the fake Salesforce org of package salesforcetest for
// local development: OAuth 2.0 (web server flow with PKCE, client credentials), UserInfo,
// and the REST API (describe, records, SOQL query/queryAll, SOSL search, getDeleted,
// limits) at one address, seeded with the demo org's Accounts, Contacts and Cases.
//
//	go run ./hack/fake-salesforce --listen 127.0.0.1:8092
//
// The demo connected apps are printed on start; they are fixed, public and good for this
// fake only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/unified-connectors/connector-operator/connectors/salesforce/salesforcetest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8092", "address to serve the fake org on")
	flag.Parse()
	if err := run(*listen); err != nil {
		log.Fatalf("fake-salesforce: %v", err)
	}
}

func run(listen string) error {
	fake := salesforcetest.New()
	fake.SeedDemo()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	printDemo(url, fake)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// printDemo prints the org's address and its demo credentials.
func printDemo(url string, fake *salesforcetest.Server) {
	fmt.Printf("fake Salesforce org at %s (org id %s, API v%s to v%s)\n", url, fake.OrgID(),
		salesforcetest.OldestAPIVersion, salesforcetest.LatestAPIVersion)
	fmt.Printf("  clientCredentials (runs as Ivy Integration): clientID=%s clientSecret=%s\n",
		salesforcetest.DemoIntegrationClientID, salesforcetest.DemoIntegrationClientSecret)
	fmt.Printf("  oauth2 web server flow (consents as %s): clientID=%s clientSecret=%s\n",
		salesforcetest.DefaultUser().Name, salesforcetest.DemoClientID, salesforcetest.DemoClientSecret)
	fmt.Printf("try:\n  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id=%s -d client_secret=%s %s/services/oauth2/token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n",
		salesforcetest.DemoIntegrationClientID, salesforcetest.DemoIntegrationClientSecret, url)
	fmt.Printf("  curl -H \"Authorization: Bearer $TOKEN\" '%s/services/data/v%s/query?q=SELECT+Id,Name+FROM+Account'\n",
		url, salesforcetest.LatestAPIVersion)
}
