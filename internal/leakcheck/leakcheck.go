// Package leakcheck helps test suites prove that no credential reaches logs, Events,
// status or API answers: it hands out recognisable secret values, captures output, and
// searches it for any part of those values.
package leakcheck

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/util/rand"
)

// Window is the length of the substrings searched for: client-go's hex dumps of bodies
// split a value across lines 16 characters at a time, so whole-value matching would miss
// it.
const Window = 12

// Buffer is a goroutine-safe bytes.Buffer for captured output.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Secrets remembers every credential a suite hands out or sees issued.
type Secrets struct {
	mu     sync.Mutex
	values []string
}

// Token returns a fresh, unguessable credential value and remembers it.
func (s *Secrets) Token(prefix string) string {
	v := prefix + "-" + rand.String(24)
	s.Remember(v)
	return v
}

// Remember adds values issued by someone else (a fake's OAuth2 server, TokenRequest).
func (s *Secrets) Remember(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v != "" {
			s.values = append(s.values, v)
		}
	}
}

// All returns every remembered value.
func (s *Secrets) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.values...)
}

// Find reports, for each haystack (named by its key), the values any Window-long part
// of whose secret part appears in it. For a JWT the secret part is its signature: its
// header and claims are not secret and would match harmless text.
func Find(haystacks map[string]string, values []string) []string {
	var leaks []string
	for _, v := range values {
		secret := v
		if parts := strings.Split(v, "."); len(parts) == 3 {
			secret = parts[2]
		}
		for where, hay := range haystacks {
			for i := 0; i+Window <= len(secret); i++ {
				if strings.Contains(hay, secret[i:i+Window]) {
					leaks = append(leaks, fmt.Sprintf("a credential (%.6s…) in the %s", v, where))
					break
				}
			}
		}
	}
	return leaks
}
