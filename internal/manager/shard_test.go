package manager_test

import (
	"testing"

	"github.com/unified-connectors/connector-operator/internal/manager"
)

// TestLeaseName: each shard elects its own leader, the replicas of one shard share a
// Lease whatever the selector's spelling, and the unsharded operator keeps its Lease.
func TestLeaseName(t *testing.T) {
	lease := func(selector, id string) string {
		t.Helper()
		sel, err := manager.WatchSelector(selector)
		if err != nil {
			t.Fatalf("%q: %v", selector, err)
		}
		return manager.LeaseName(id, sel)
	}
	key := manager.ShardLabel
	if got := lease("", ""); got != manager.DefaultLeaderElectionID {
		t.Errorf("unsharded: %q, want %q", got, manager.DefaultLeaderElectionID)
	}
	shard1, shard2, main := lease(key+"=shard1", ""), lease(key+"=shard2", ""), lease("!"+key, "")
	if shard1 == shard2 || shard1 == main || shard2 == main || shard1 == manager.DefaultLeaderElectionID {
		t.Errorf("shards share a Lease: %q %q %q", shard1, shard2, main)
	}
	if len(shard1) > 63 {
		t.Errorf("%q is longer than a Lease name should be", shard1)
	}
	if got := lease(" "+key+" in (shard1) ", ""); got != lease(key+" in (shard1)", "") {
		t.Errorf("one selector spelled two ways gives two Leases: %q", got)
	}
	if got := lease("team=a,"+key+"=shard1", ""); got != lease(key+"=shard1,team=a", "") {
		t.Errorf("requirements in another order give another Lease: %q", got)
	}
	if got := lease(key+"=shard1", "my-lease"); got != "my-lease" {
		t.Errorf("--leader-election-id ignored: %q", got)
	}
	for _, bad := range []string{"=shard1", key + " in shard1", "a=b=c"} {
		if _, err := manager.WatchSelector(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
