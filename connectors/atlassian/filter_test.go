package atlassian

import (
	"errors"
	"testing"
)

func TestCheckFilter(t *testing.T) {
	for _, ok := range []string{
		"",
		"project = PRJA",
		`label = "a" AND (space = A OR space = 'B')`,
		`title ~ "(unbalanced in a string"`,
		`title ~ "order by created"`,
		`title ~ 'it\'s )'`,
		"recorder = x", // "order" inside a word
	} {
		if err := CheckFilter(ok); err != nil {
			t.Errorf("CheckFilter(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"space = A) OR (space = B",
		"(space = A",
		"space = A)",
		`title ~ "unterminated`,
		`title ~ 'unterminated`,
		`title ~ "escaped at the end\"`,
		"space = A ORDER BY created",
		"space = A order\n by title",
	} {
		if err := CheckFilter(bad); !errors.Is(err, ErrFilter) {
			t.Errorf("CheckFilter(%q) = %v, want ErrFilter", bad, err)
		}
	}
}
