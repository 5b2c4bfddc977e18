package controllers

import (
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/unified-connectors/connector-operator/internal/syncer"
)

// probeMemory is what the Connection reconciler remembers between reconciles, in memory
// only: a restart forgets it, which costs at most one extra vendor call per Connection.
// Entries are keyed by name but belong to one object (UID): a Connection deleted and
// re-created under the same name, with the two events coalesced in the workqueue, must
// not inherit its predecessor's pause, verdict or webhook marks.
type probeMemory struct {
	// now is the clock; nil means time.Now.
	now func() time.Time

	mu      sync.Mutex
	entries map[types.NamespacedName]*connectionMemory
}

// connectionMemory is one Connection's memory.
type connectionMemory struct {
	uid types.UID
	// hold is the vendor's requested pause (Retry-After): no trigger, however it
	// arrives, calls the vendor before it ends.
	hold *vendorHold
	// rejected is the inputs under which the vendor last rejected the credential, so
	// that duplicate or periodic triggers do not ask again until one of them changes.
	rejected *probeInputs
	// probed is the last successful probe, so reconciles caused by sync progress do not
	// call the vendor again before the probe interval.
	probed *probeRecord
	// webhooks are the webhook annotations already handed to the sync engine.
	webhooks map[string]string
}

// vendorHold is a pause the vendor asked for, with the verdict that came with it.
type vendorHold struct {
	until           time.Time
	reason, message string
}

// probeRecord is a successful probe.
type probeRecord struct {
	inputs probeInputs
	at     time.Time
}

// probeInputs identifies everything a probe's verdict depends on.
type probeInputs struct {
	connection, connector int64
	secretVersion         string
	requestedAt           string
}

func (m *probeMemory) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

// entry returns the memory of the object key/uid, creating it, and whether what was
// kept for another object of the same name was dropped. Callers hold m.mu.
func (m *probeMemory) entry(key types.NamespacedName, uid types.UID) (e *connectionMemory, replaced bool) {
	if m.entries == nil {
		m.entries = map[types.NamespacedName]*connectionMemory{}
	}
	e, ok := m.entries[key]
	if ok && e.uid == uid {
		return e, false
	}
	e = &connectionMemory{uid: uid}
	m.entries[key] = e
	return e, ok
}

// Observe binds key to the object uid and reports whether memory of another object of
// that name was forgotten: the caller then forgets what others keep by name too (the
// vendor client).
func (m *probeMemory) Observe(key types.NamespacedName, uid types.UID) (replaced bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, replaced = m.entry(key, uid)
	return replaced
}

// Forget drops everything kept for key (the Connection is gone).
func (m *probeMemory) Forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
}

// Hold returns the vendor's pause for the object, if one is still running; an expired
// one is dropped.
func (m *probeMemory) Hold(key types.NamespacedName, uid types.UID) (h vendorHold, remaining time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.entry(key, uid)
	if e.hold == nil {
		return vendorHold{}, 0, false
	}
	if remaining = e.hold.until.Sub(m.clock()); remaining <= 0 {
		e.hold = nil
		return vendorHold{}, 0, false
	}
	return *e.hold, remaining, true
}

// SetHold records that the vendor asked for a pause of d, with the verdict to report
// until it ends.
func (m *probeMemory) SetHold(key types.NamespacedName, uid types.UID, d time.Duration, reason, message string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.entry(key, uid)
	e.hold = &vendorHold{until: m.clock().Add(d), reason: reason, message: message}
}

// Rejected reports whether the vendor rejected the credential under exactly these inputs.
func (m *probeMemory) Rejected(key types.NamespacedName, uid types.UID, in probeInputs) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.entry(key, uid)
	return e.rejected != nil && *e.rejected == in
}

// SetRejected records that the vendor rejected the credential under in.
func (m *probeMemory) SetRejected(key types.NamespacedName, uid types.UID, in probeInputs) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.entry(key, uid)
	e.rejected = &in
}

// ClearRejected forgets a rejection: the inputs changed, the vendor is asked again.
func (m *probeMemory) ClearRejected(key types.NamespacedName, uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.entry(key, uid)
	e.rejected = nil
}

// ProbedWithin reports whether a probe under exactly these inputs succeeded less than d ago.
func (m *probeMemory) ProbedWithin(key types.NamespacedName, uid types.UID, in probeInputs, d time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.entry(key, uid)
	return e.probed != nil && e.probed.inputs == in && m.clock().Sub(e.probed.at) < d
}

// SetProbed records a successful probe under in, now.
func (m *probeMemory) SetProbed(key types.NamespacedName, uid types.UID, in probeInputs) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.entry(key, uid)
	e.probed = &probeRecord{inputs: in, at: m.clock()}
}

// NewWebhooks returns the containers whose webhook annotation changed since the last
// call for this object, and remembers the current ones. A new leader (or a new object)
// sees every annotation once: one extra incremental sync, which is harmless.
func (m *probeMemory) NewWebhooks(key types.NamespacedName, uid types.UID, annotations map[string]string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.entry(key, uid)
	next := map[string]string{}
	var containers []string
	for k, v := range annotations {
		container, ok := strings.CutPrefix(k, syncer.WebhookAnnotationPrefix)
		if !ok {
			continue
		}
		next[container] = v
		if e.webhooks[container] != v {
			containers = append(containers, container)
		}
	}
	e.webhooks = next
	return containers
}
