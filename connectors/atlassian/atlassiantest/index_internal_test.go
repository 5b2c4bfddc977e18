package atlassiantest

import (
	"testing"
	"time"
)

// TestSearchIndexCatchUp checks the index's clock: a write becomes searchable when its
// lag has passed, a later write replaces an earlier one even when it falls due first
// (the lag was shortened), a held item stays at its indexed version, and a delete
// removes the item once indexed.
func TestSearchIndexCatchUp(t *testing.T) {
	x := newSearchIndex[string, int]()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	v := func(n int) *int { return &n }
	at := func(k string) (int, bool) {
		d, ok := x.docs[k]
		if !ok {
			return 0, false
		}
		return *d, true
	}

	x.write("a", v(1), t0) // no lag: indexed at once
	if n, ok := at("a"); !ok || n != 1 {
		t.Fatalf("a = %v %v, want 1 at once", n, ok)
	}
	x.lag = time.Minute
	x.write("a", v(2), t0)
	x.lag = time.Second
	x.write("a", v(3), t0.Add(time.Second)) // due at t0+2s, before version 2's t0+1m
	x.catchUp(t0.Add(time.Second))
	if n, _ := at("a"); n != 1 {
		t.Errorf("a = %d before any write is due, want 1", n)
	}
	x.catchUp(t0.Add(2 * time.Second))
	if n, _ := at("a"); n != 3 {
		t.Errorf("a = %d once version 3 is due, want 3", n)
	}
	x.catchUp(t0.Add(time.Hour))
	if n, _ := at("a"); n != 3 {
		t.Errorf("a = %d: version 2 came due later and went back in time, want 3", n)
	}

	x.held["b"] = true
	x.write("b", v(1), t0)
	x.write("a", nil, t0)
	x.catchUp(t0.Add(time.Hour))
	if _, ok := at("b"); ok {
		t.Error("held b was indexed")
	}
	if _, ok := at("a"); ok {
		t.Error("deleted a is still indexed")
	}
	x.write("b", v(2), t0)
	x.release("b")
	if n, ok := at("b"); !ok || n != 2 || x.held["b"] || len(x.pending) != 0 {
		t.Errorf("after release b = %d %v (held %v, pending %v), want 2", n, ok, x.held["b"], x.pending)
	}
	x.held["c"] = true
	x.write("c", v(1), t0)
	x.write("d", v(1), t0)
	x.flush()
	if _, ok := at("c"); !ok || len(x.held) != 0 || len(x.pending) != 0 {
		t.Errorf("flush left c unindexed, holds %v, pending %v", x.held, x.pending)
	}
	if _, ok := at("d"); !ok {
		t.Error("flush left d unindexed")
	}
}
