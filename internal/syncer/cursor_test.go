package syncer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/connectors"
)

func item(id string, at time.Time) connectors.Item { return connectors.Item{ID: id, UpdatedAt: at} }

func TestCursorSeenAndSettle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	var c Cursor
	c.Add(item("1", t0))
	c.Add(item("2", t0))
	c.Add(item("3", t0.Add(time.Second)))
	if !c.Delivered(item("1", t0)) || !c.Delivered(item("2", t0)) || !c.Delivered(item("3", t0.Add(time.Second))) {
		t.Fatal("added items must count as delivered")
	}
	if c.Delivered(item("4", t0)) {
		t.Fatal("an unseen item at a seen instant is not delivered")
	}
	if c.Delivered(item("1", t0.Add(time.Millisecond))) {
		t.Fatal("a newer version of a delivered item is not delivered")
	}
	// A late item (older than what was delivered, inside the window) is not delivered
	// until added, and adding it keeps the instants ordered.
	late := item("9", t0.Add(-time.Minute))
	if c.Delivered(late) {
		t.Fatal("a late item is not delivered")
	}
	c.Add(late)
	if !c.Delivered(late) || c.Seen[0].At != late.UpdatedAt {
		t.Fatalf("late item recorded in order: %+v", c.Seen)
	}
	// Settle forgets what lies before the mark: it counts as delivered.
	c.Settle(t0.Add(time.Second))
	if len(c.Seen) != 1 || !c.Delivered(item("anything", t0)) || c.Delivered(item("other", t0.Add(time.Second))) {
		t.Fatalf("settle: %+v", c)
	}
	c.Settle(t0) // never backwards
	if !c.From.Equal(t0.Add(time.Second)) {
		t.Fatal("From moved back")
	}
	if !c.Latest().Equal(t0.Add(time.Second)) {
		t.Fatalf("latest %v", c.Latest())
	}
}

func TestCursorTrimForgetsOldestFirst(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	var c Cursor
	for i := range 10 {
		c.Add(item(string(rune('a'+i)), t0.Add(time.Duration(i/4)*time.Second)))
	}
	c.Trim(5)
	if c.Len() != 5 {
		t.Fatalf("len %d", c.Len())
	}
	if c.Delivered(item("a", t0)) || !c.Delivered(item("j", t0.Add(2*time.Second))) {
		t.Fatalf("oldest forgotten first: %+v", c.Seen)
	}
}

func TestCursorRoundTripAndV1(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 123456789, time.UTC)
	c := Cursor{From: t0.Add(-time.Hour)}
	c.Add(item("1", t0))
	c.Add(item(strings.Repeat("k", 100), t0.Add(time.Microsecond)))
	back, err := ParseCursor(c.Encode())
	if err != nil || !back.From.Equal(c.From) || back.Len() != 2 || !back.Delivered(item("1", t0)) ||
		!back.Delivered(item(strings.Repeat("k", 100), t0.Add(time.Microsecond))) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if len(c.Encode()) > 200 {
		t.Fatalf("a long id is kept as a digest: %d bytes", len(c.Encode()))
	}
	// A cursor written by the previous release keeps its meaning.
	raw, _ := json.Marshal(map[string]any{"t": t0, "ids": []string{"10001", "10002"}})
	v1, err := ParseCursor("v1." + base64.RawURLEncoding.EncodeToString(raw))
	if err != nil || !v1.From.Equal(t0) || !v1.Delivered(item("10001", t0)) || v1.Delivered(item("10003", t0)) ||
		!v1.Delivered(item("x", t0.Add(-time.Millisecond))) {
		t.Fatalf("v1: %+v %v", v1, err)
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("")
	c := Cursor{From: time.Unix(1732877091, 0)}
	c.Add(item("10001", time.Unix(1732877091, 0)))
	c.Add(item("10002", time.Unix(1732877092, 0)))
	f.Add(c.Encode())
	f.Add("v1.e30")
	f.Add("v2.e30")
	f.Add("v1.!!!")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses to the same position.
		again, err := ParseCursor(c.Encode())
		if err != nil || !again.From.Equal(c.From) || again.Len() != c.Len() {
			t.Fatalf("%q: %+v then %+v (%v)", s, c, again, err)
		}
	})
}

// TestStatusFitsAtTheContainerBound: with MaxContainers containers of the longest keys and
// names, each cursor holding as many long ids as seenCap allows, status.sync stays well
// below etcd's 1.5 MiB object limit.
func TestStatusFitsAtTheContainerBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	st := v1alpha1.SyncStatus{ItemsDelivered: 1 << 40, LastHandledResyncRequest: strings.Repeat("r", 253)}
	perContainer := seenCap(MaxContainers)
	for c := range MaxContainers {
		cur := Cursor{From: t0}
		for i := range perContainer {
			// Distinct instants and ids as long as a digest: the worst case per entry.
			cur.Add(item(fmt.Sprintf("%0*d", maxIDLength+1, c*perContainer+i), t0.Add(time.Duration(i)*time.Millisecond+time.Nanosecond)))
		}
		now := metav1.NewTime(t0)
		st.Containers = append(st.Containers, v1alpha1.ContainerSyncStatus{
			Key: strings.Repeat("K", 255), Name: truncate(strings.Repeat("n", 1000), maxContainerName),
			Cursor: cur.Encode(), ItemsDelivered: 1 << 40, LastSyncTime: &now, LastPruneTime: &now,
		})
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status.sync at %d containers × %d remembered ids: %d KiB", MaxContainers, perContainer, len(b)>>10)
	if len(b) > 1<<20 {
		t.Fatalf("status.sync is %d bytes at the container bound; etcd refuses objects over 1.5 MiB", len(b))
	}
}

// TestDeletedItemEvent: a change-feed deletion is sent as item.deleted with only its id,
// container and time, never as an upsert of an empty item, and its id differs from the
// upsert of the same version.
func TestDeletedItemEvent(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)
	it := connectors.Item{ID: "001000000000001AAA", Key: "001000000000001AAA", Container: "Account", UpdatedAt: at,
		Title: "secret-free title", Deleted: true}
	del, err := itemEvent("/namespaces/a/connections/b", it)
	if err != nil {
		t.Fatal(err)
	}
	it.Deleted = false
	up, err := itemEvent("/namespaces/a/connections/b", it)
	if err != nil {
		t.Fatal(err)
	}
	if del.Type() != EventItemDeleted || up.Type() != EventItemUpserted || del.ID() == up.ID() {
		t.Fatalf("deleted %s %s, upserted %s %s", del.Type(), del.ID(), up.Type(), up.ID())
	}
	var d map[string]any
	if err := del.DataAs(&d); err != nil {
		t.Fatal(err)
	}
	if len(d) != 3 || d["id"] != it.ID || d["container"] != "Account" || d["deletedAt"] != "2026-12-02T03:04:05Z" {
		t.Fatalf("deletion data %v", d)
	}
}
