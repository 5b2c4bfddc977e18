package postgresql_test

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/manager"
	"github.com/unified-connectors/connector-operator/internal/syncer/sinktest"
)

const (
	// killShard labels the Connection only the real binary syncs.
	killShard = "sigkill"
	// The binary's persistence flags: status.sync.position is written at least every
	// persistItems acknowledged items or persistEvery.
	persistEvery = 5 * time.Second
	persistItems = 500
	killBatch    = 100
)

// startBuild builds the manager binary in the background (go build, as test/ha does),
// so that the link overlaps the other tests.
func (s *suite) startBuild() {
	s.buildOnce.Do(func() {
		s.build = make(chan struct{})
		go func() {
			defer close(s.build)
			dir, err := os.MkdirTemp("", "pg-e2e-bin")
			if err != nil {
				s.buildErr = err
				return
			}
			bin := filepath.Join(dir, "manager")
			cmd := osexec.Command("go", "build", "-o", bin, "github.com/unified-connectors/connector-operator")
			cmd.Dir = s.test.Root
			if out, err := cmd.CombinedOutput(); err != nil {
				s.buildErr = fmt.Errorf("building the manager: %v\n%s", err, out)
				return
			}
			s.binary = bin
		}()
	})
}

// writeKubeconfig writes the envtest admin's credentials impersonating the operator's
// ServiceAccount, as the in-process manager's config does: the binary holds only the
// shipped RBAC.
func (s *suite) writeKubeconfig(t *testing.T) string {
	t.Helper()
	c := s.test.ManagerConfig
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["operator"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken,
		Impersonate: c.Impersonate.UserName, ImpersonateGroups: c.Impersonate.Groups,
	}
	kc.Contexts["operator"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "operator"}
	kc.CurrentContext = "operator"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, clientcmd.WriteToFile(*kc, path))
	return path
}

// process is one manager binary; its output goes to the leak check's logs.
type process struct {
	cmd  *osexec.Cmd
	done chan struct{}
}

func (s *suite) startBinary(t *testing.T, kubeconfig string) *process {
	t.Helper()
	p := &process{done: make(chan struct{})}
	p.cmd = osexec.Command(s.binary,
		"--kubeconfig="+kubeconfig,
		"--namespace="+operatorNS,
		"--leader-elect=false",
		"--watch-label-selector="+manager.ShardLabel+"="+killShard,
		"--sync-persist-interval="+persistEvery.String(),
		fmt.Sprintf("--sync-persist-items=%d", persistItems),
		"--allow-insecure-vendor-urls",
		"--api-bind-address=0",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
		"--log-format=json",
		"-v=1",
	)
	p.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	p.cmd.Stdout, p.cmd.Stderr = logs, logs
	must(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	must(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

// 13. The real binary streams a logicalReplication Connection while 20,000 row changes
// arrive; it is SIGKILLed with a batch in flight when the sink has about half of them,
// and a new process resumes from the slot: no change is lost (every version of every
// row reaches the sink, and the final state equals the table) and the repeats stay
// within what was unconfirmed at the kill.
func TestSIGKILLMidStream(t *testing.T) {
	s, g := testEnv(t), NewWithT(t)
	ctx := context.Background()
	const (
		tbl    = "public.killed"
		rows   = 2000
		rounds = 10 // every row updated rounds times: 20,000 changes
		perTx  = 50
	)
	exec(t, s.pg, fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, val integer NOT NULL, note text);
		INSERT INTO %[1]s SELECT g, 0, 'row ' || g FROM generate_series(1, %d) g`, tbl, rows))
	role := s.replicationRole(t, s.pg, tbl)
	<-s.build
	must(t, s.buildErr)
	kubeconfig := s.writeKubeconfig(t)

	sink := sinktest.NewServer()
	t.Cleanup(sink.Close)
	// The gate holds the batch that brings the sink past half of the changes: it is
	// recorded, but its answer waits until the process is dead (a batch in flight).
	reached, release := make(chan struct{}), make(chan struct{})
	var gateOnce sync.Once
	var mu sync.Mutex
	changes := 0
	sink.OnBatch(func(batch []sinktest.Event) {
		mu.Lock()
		for _, e := range batch {
			if e.Type == eventUpserted {
				changes++
			}
		}
		past := changes >= rows+rounds*rows/2
		mu.Unlock()
		if past {
			gateOnce.Do(func() {
				close(reached)
				<-release
			})
		}
	})

	first := s.startBinary(t, kubeconfig)
	s.connector(t, "pg-kill", s.pg, nil)
	start := time.Now()
	conn := s.connection(t, "kill", "pg-kill", secretOf(role), replicationMode(table(tbl, "", "note")), sink.URL(), killBatch,
		func(c *v1alpha1.Connection) { c.Labels = map[string]string{manager.ShardLabel: killShard} })
	s.synced(t, "kill", start)
	g.Expect(sink.Check().Distinct).To(Equal(rows), "the snapshot")

	// 20,000 changes, in transactions of 50 rows.
	written := make(chan error, 1)
	go func() {
		c, err := s.pg.SuperConn(ctx, db)
		if err != nil {
			written <- err
			return
		}
		defer func() { _ = c.Close(context.Background()) }()
		for range rounds {
			for from := 1; from <= rows; from += perTx {
				if _, err := c.Exec(ctx, fmt.Sprintf(`UPDATE %s SET val = val + 1 WHERE id BETWEEN $1 AND $2`, tbl), from, from+perTx-1); err != nil {
					written <- err
					return
				}
			}
		}
		written <- nil
	}()

	select {
	case <-reached:
	case <-time.After(3 * timeout):
		t.Fatalf("the sink never reached half of the changes (%d events)", len(sink.Events()))
	}
	first.kill(t)
	atKill := len(sink.Events())
	close(release)
	persisted := s.get(g, "kill").Status
	if persisted.Sync == nil {
		persisted.Sync = &v1alpha1.SyncStatus{}
	}
	g.Expect(<-written).To(Succeed())

	second := s.startBinary(t, kubeconfig)
	sameState(t, s.pg, sink, tbl)
	resumed := time.Now()
	s.synced(t, "kill", start)

	// Every version of every row reached the sink; count the versions delivered twice.
	seen := map[[2]int64]int{}
	for _, e := range rowEvents(t, sink) {
		g.Expect(e.Type).To(Equal(eventUpserted))
		seen[[2]int64{num(e.Fields, "id"), num(e.Fields, "val")}]++
	}
	missing, duplicates := 0, 0
	for id := int64(1); id <= rows; id++ {
		for v := int64(0); v <= rounds; v++ {
			switch n := seen[[2]int64{id, v}]; {
			case n == 0:
				missing++
			case n > 1:
				duplicates += n - 1
			}
		}
	}
	// What the design bounds: the sink received the batch in flight (killBatch changes)
	// but the process never saw its answer, and the slot confirms only what was
	// acknowledged, so the new process resends at most the unconfirmed window.
	bound := killBatch + persistItems
	t.Logf("SIGKILL at %d events (%d changes); status.sync.position at the kill %q; new process caught up %s after start; %d events in all, %d versions missing, %d delivered twice (bound %d); status.postgresql %+v",
		atKill, changes, persisted.Sync.Position, time.Since(resumed).Round(time.Millisecond), len(sink.Events()), missing, duplicates, bound, persisted.PostgreSQL)
	g.Expect(missing).To(BeZero(), "changes lost across the SIGKILL")
	g.Expect(duplicates).To(BeNumerically("<=", bound), "changes delivered twice")
	g.Expect(len(seen)).To(Equal(rows * (rounds + 1)))

	must(t, s.k8s.Delete(ctx, conn))
	s.gone(t, "kill")
	a, b := slotExists(t, s.pg, slotName(conn.UID))
	g.Expect([]bool{a, b}).To(Equal([]bool{false, false}), "the new process released the slot at deletion")
	_ = second
}
