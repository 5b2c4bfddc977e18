package connectors

import (
	"fmt"
	"sort"
	"sync"
)

var (
	registryMu sync.RWMutex
	registry   = map[string]Provider{}
)

// Register makes p available under p.Type(). It is meant to be called from a vendor
// package's init and panics on a duplicate, which is a programming error.
func Register(p Provider) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[p.Type()]; dup {
		panic(fmt.Sprintf("connectors: provider %q registered twice", p.Type()))
	}
	registry[p.Type()] = p
}

// Get returns the provider registered for typ.
func Get(typ string) (Provider, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	p, ok := registry[typ]
	return p, ok
}

// Types lists the registered provider types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
