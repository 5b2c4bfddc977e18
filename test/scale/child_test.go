package scale_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/unified-connectors/connector-operator/internal/logging"
	"github.com/unified-connectors/connector-operator/internal/manager"
)

// The manager under measurement runs in a child process (this test binary, re-executed
// with childEnv set), so that its RSS and heap are its own: the harness's clients, the
// fake vendor and the watch that waits for Ready stay in the parent. kube-apiserver and
// etcd are processes of their own anyway.

const childEnv = "SCALE_MANAGER_CONFIG"

// childConfig is what the parent hands the child: where the API server is, as whom to
// act (the operator's ServiceAccount, impersonated by the envtest admin), and the
// manager's options.
type childConfig struct {
	Host        string
	CAData      []byte
	CertData    []byte
	KeyData     []byte
	Impersonate rest.ImpersonationConfig
	// QPS and Burst of the manager's rest.Config before manager.New (what
	// ctrl.GetConfigOrDie gives main.go).
	QPS   float32
	Burst int
	// Options are the manager's, as main.go's flag defaults set them.
	Options manager.Options
}

// childStats is what the child reports on GET /stats.
type childStats struct {
	// Writes counts the manager's non-GET requests by resource ("connections/status").
	Writes map[string]int64
	// Refused lists requests the API server refused with 403.
	Refused []string
	// HeapPeak and HeapNow are runtime.MemStats.HeapInuse, sampled every 100 ms.
	HeapPeak, HeapNow uint64
	// RSSPeak (VmHWM) and RSSNow (VmRSS), bytes.
	RSSPeak, RSSNow uint64
}

// runChild runs the manager until the parent kills it or closes stdin.
func runChild(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cc childConfig
	if err := json.Unmarshal(b, &cc); err != nil {
		return err
	}
	logger, err := logging.New(logging.Options{Format: "json"}, io.Discard)
	if err != nil {
		return err
	}
	ctrl.SetLogger(logger)

	st := &statsRecorder{writes: map[string]int64{}}
	cfg := &rest.Config{
		Host:            cc.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: cc.CAData, CertData: cc.CertData, KeyData: cc.KeyData},
		Impersonate:     cc.Impersonate,
		QPS:             cc.QPS,
		Burst:           cc.Burst,
	}
	cfg.Wrap(st.wrap)
	mgr, err := manager.New(cfg, cc.Options)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	go func() {
		// The parent closes stdin (or dies): stop.
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	go st.sampleHeap(ctx)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: st, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	fmt.Printf("STATS %s\n", ln.Addr())
	return mgr.Start(ctx)
}

type statsRecorder struct {
	mu       sync.Mutex
	writes   map[string]int64
	refused  []string
	heapPeak uint64
}

func (s *statsRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		s.mu.Lock()
		defer s.mu.Unlock()
		if req.Method != http.MethodGet {
			s.writes[resourceOf(req.URL.Path)]++
		}
		if err == nil && resp.StatusCode == http.StatusForbidden {
			s.refused = append(s.refused, req.Method+" "+req.URL.Path)
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// resourceOf names the resource of an API path: /apis/g/v/namespaces/ns/connections/x/status
// is "connections/status", /api/v1/namespaces/ns/secrets/x is "secrets".
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return path
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		return "namespaces"
	case 1, 2:
		return parts[0]
	default:
		return parts[0] + "/" + parts[2]
	}
}

func (s *statsRecorder) sampleHeap(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		s.mu.Lock()
		s.heapPeak = max(s.heapPeak, m.HeapInuse)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *statsRecorder) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	peak, now := procMemory("self")
	s.mu.Lock()
	st := childStats{Writes: map[string]int64{}, Refused: s.refused,
		HeapPeak: max(s.heapPeak, m.HeapInuse), HeapNow: m.HeapInuse, RSSPeak: peak, RSSNow: now}
	for k, v := range s.writes {
		st.Writes[k] = v
	}
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(st)
}

// procMemory reads VmHWM and VmRSS of a process, in bytes.
func procMemory(pid string) (peak, now uint64) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			peak = kib << 10
		case "VmRSS":
			now = kib << 10
		}
	}
	return peak, now
}

// child is a running manager process, seen from the parent.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

// startChild starts a manager process with cc.
func startChild(dir string, cc childConfig) (*child, error) {
	b, err := json.Marshal(cc)
	if err != nil {
		return nil, err
	}
	path := dir + "/manager.json"
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "STATS "); ok {
			c.addr = addr
			break
		}
	}
	if c.addr == "" {
		c.stop()
		return nil, fmt.Errorf("the manager process exited before serving its stats")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return c, nil
}

func (c *child) stats() (childStats, error) {
	var st childStats
	resp, err := http.Get("http://" + c.addr + "/stats")
	if err != nil {
		return st, err
	}
	defer func() { _ = resp.Body.Close() }()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// stop ends the process: stdin closes (a graceful stop), then a kill after 30 s.
func (c *child) stop() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
