package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// Server limits.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 120 * time.Second
	// maxHeaderBytes leaves room for a search cursor over many sources in the URL.
	maxHeaderBytes = 256 << 10
	// maxBodyBytes bounds a request body (POST …/items).
	maxBodyBytes = 1 << 20
	// maxKeptClients bounds the vendor clients kept between requests.
	maxKeptClients = 4096
	// shutdownTimeout is what requests in flight get to finish on shutdown; the manager
	// gives its runnables 30 s.
	shutdownTimeout = 25 * time.Second
)

// Deps are what the server reads and writes through.
type Deps struct {
	// Client creates TokenReviews, SubjectAccessReviews and the Secrets the OAuth2 flow
	// writes.
	Client client.Client
	// Reader lists Connectors, Connections and Namespace and Secret metadata: the
	// manager's cache (mgr.GetCache(), not the client, which reads Secret metadata live),
	// so that every replica answers from memory.
	Reader client.Reader
	// APIReader reads Secrets live: their data is never cached.
	APIReader client.Reader
	// Vendors builds each Connection's vendor client (credentials, rate limit,
	// Retry-After, egress guard), shared with the reconcilers.
	Vendors *vendorclient.Factory
	// Namespace is the operator's namespace (state key and used-state Secrets).
	Namespace string
	// Logger receives the access log and errors.
	Logger logr.Logger
	// Webhooks receives POST /webhooks/v1/namespaces/{ns}/connections/{name} (the sync
	// engine's signed webhook receiver); nil answers NOT_FOUND there.
	Webhooks http.Handler
}

// Server is the aggregated HTTP API. It is a manager.Runnable that runs on every replica
// (it needs no leadership: it only reads the cache and calls vendors).
type Server struct {
	opts    Options
	deps    Deps
	log     logr.Logger
	auth    *reviewer
	states  *stateStore
	handler http.Handler
	routes  *http.ServeMux
	// slots bounds the vendor calls of all searches together.
	slots chan struct{}
	// clients keeps built vendor clients briefly (see vendorClient).
	clients *cache.LRUExpireCache

	mu   sync.Mutex
	addr net.Addr
}

var (
	_ manager.Runnable               = (*Server)(nil)
	_ manager.LeaderElectionRunnable = (*Server)(nil)
)

// New returns a Server; it does no I/O until Start.
func New(deps Deps, opts Options) (*Server, error) {
	if deps.Client == nil || deps.Reader == nil || deps.APIReader == nil || deps.Vendors == nil {
		return nil, errNoDeps
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		deps:    deps,
		log:     deps.Logger,
		auth:    newReviewer(deps.Client, opts),
		slots:   make(chan struct{}, 8*opts.SearchConcurrency),
		clients: cache.NewLRUExpireCache(maxKeptClients),
		states: &stateStore{
			client: deps.Client, reader: deps.APIReader, namespace: deps.Namespace, ttl: opts.StateTTL,
		},
	}
	s.routes = s.newMux()
	s.handler = s.middleware(cleanPaths(s.routes))
	return s, nil
}

// Handler serves the API without a listener (tests and benchmarks).
func (s *Server) Handler() http.Handler { return s.handler }

// NeedLeaderElection is false: every replica serves the API.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr is the address the server listens on, nil before Start has bound it.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Start serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	ln := s.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.opts.BindAddress); err != nil {
			return fmt.Errorf("api: listening on %s: %w", s.opts.BindAddress, err)
		}
	}
	s.mu.Lock()
	s.addr = ln.Addr()
	s.mu.Unlock()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		// A search answers within SearchSourceTimeout, a vendor call within VendorTimeout
		// (and an OAuth2 exchange within its own 10 s): the write deadline covers both.
		WriteTimeout:   max(s.opts.SearchSourceTimeout, s.opts.VendorTimeout) + 20*time.Second,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		// Requests in flight finish on shutdown (Shutdown waits for them): their contexts
		// do not end with the manager's.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	scheme := "http"
	if !s.opts.plainHTTP(ln.Addr()) {
		scheme = "https"
		cfg, err := s.tlsConfig(ctx, ln.Addr())
		if err != nil {
			_ = ln.Close()
			return err
		}
		srv.TLSConfig = cfg
		ln = tls.NewListener(ln, cfg)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving the HTTP API", "address", s.addr.String(), "scheme", scheme)
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("api: shutting down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

// tlsConfig serves the certificate from CertDir (reloaded on change) or a self-signed one.
func (s *Server) tlsConfig(ctx context.Context, addr net.Addr) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// HTTP/1.1 only: HTTP/2's stream multiplexing is a denial-of-service surface
		// (CVE-2023-44487) this API does not need.
		NextProtos: []string{"http/1.1"},
	}
	if s.opts.CertDir != "" {
		w, err := certwatcher.New(filepath.Join(s.opts.CertDir, "tls.crt"), filepath.Join(s.opts.CertDir, "tls.key"))
		if err != nil {
			return nil, fmt.Errorf("api: loading the certificate from %s: %w", s.opts.CertDir, err)
		}
		go func() {
			if err := w.Start(ctx); err != nil {
				s.log.Error(err, "watching the API certificate")
			}
		}()
		cfg.GetCertificate = w.GetCertificate
		return cfg, nil
	}
	cert, err := selfSigned(addr, s.opts.ExternalURL)
	if err != nil {
		return nil, fmt.Errorf("api: making a self-signed certificate: %w", err)
	}
	s.log.Info("no --api-cert-dir: serving a self-signed certificate")
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}
