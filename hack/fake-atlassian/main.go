// Command fake-atlassian serves the fake Atlassian site of package atlassiantest for local
// development (make dev): Jira and Confluence, Cloud and Data Center paths, and the OAuth2
// gateway, at one address, seeded with demo accounts.
//
//	go run ./hack/fake-atlassian --listen 127.0.0.1:8090
//
// The demo credentials are printed on start; they are fixed, public and good for this
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

	"github.com/unified-connectors/connector-operator/connectors/atlassian/atlassiantest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to serve the fake site on")
	flag.Parse()
	if err := run(*listen); err != nil {
		log.Fatalf("fake-atlassian: %v", err)
	}
}

func run(listen string) error {
	fake := atlassiantest.New()
	for _, a := range atlassiantest.DemoAccounts() {
		fake.AddAccount(a)
	}
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

	fmt.Printf("fake Atlassian site at %s (cloud id %s)\n", url, fake.CloudID())
	fmt.Printf("  OAuth2 gateway: apiBaseURL %s, e.g. %s/ex/jira/%s/rest/api/3/myself\n", url, url, fake.CloudID())
	for _, a := range atlassiantest.DemoAccounts() {
		fmt.Printf("  %s: apiToken email=%s token=%s; pat/bearer token=%s\n", a.DisplayName, a.Email, a.APIToken, a.PAT)
	}
	fmt.Printf("try: curl -u %s:%s %s/rest/api/3/myself\n", atlassiantest.DemoAccounts()[0].Email, atlassiantest.DemoAccounts()[0].APIToken, url)

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
