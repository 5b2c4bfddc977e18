package reference

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// selector is one vector selector of a PromQL expression: a metric name and its matchers.
type selector struct {
	Metric   string
	Matchers []matcher
}

type matcher struct {
	Label, Op, Value string
}

// query is what checkQuery needs to know about a PromQL expression: every selector and
// every label name it groups or joins on.
type query struct {
	Selectors []selector
	Grouping  []string
}

// groupingKeywords take a parenthesised list of label names.
var groupingKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// operatorKeywords are PromQL words that are neither metrics nor functions.
var operatorKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true,
}

// aggregations may be followed by a by/without clause before their parenthesis.
var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

// parseQuery reads the selectors and grouping labels of a PromQL expression (Grafana
// variables such as $namespace or $__rate_interval allowed). It is a tokenizer, not a
// PromQL parser: it needs only to tell metric names from functions, keywords and labels.
func parseQuery(expr string) (query, error) {
	var q query
	s := []rune(expr)
	i := 0
	skipSpace := func() {
		for i < len(s) && unicode.IsSpace(s[i]) {
			i++
		}
	}
	readIdent := func() string {
		j := i
		for i < len(s) && (s[i] == '_' || s[i] == ':' || unicode.IsLetter(s[i]) || unicode.IsDigit(s[i])) {
			i++
		}
		return string(s[j:i])
	}
	readString := func() (string, error) {
		quote := s[i]
		i++
		var b strings.Builder
		for i < len(s) && s[i] != quote {
			if s[i] == '\\' && quote != '`' && i+1 < len(s) {
				i++
			}
			b.WriteRune(s[i])
			i++
		}
		if i >= len(s) {
			return "", fmt.Errorf("unterminated string in %q", expr)
		}
		i++
		return b.String(), nil
	}
	readMatchers := func() ([]matcher, error) {
		i++ // {
		var ms []matcher
		for {
			skipSpace()
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated {…} in %q", expr)
			}
			if s[i] == '}' {
				i++
				return ms, nil
			}
			if s[i] == ',' {
				i++
				continue
			}
			var m matcher
			if s[i] == '"' {
				// A quoted metric name, as in {"name"}.
				v, err := readString()
				if err != nil {
					return nil, err
				}
				ms = append(ms, matcher{Label: "__name__", Op: "=", Value: v})
				continue
			}
			m.Label = readIdent()
			if m.Label == "" {
				return nil, fmt.Errorf("bad matcher at %q in %q", string(s[i:]), expr)
			}
			skipSpace()
			for _, op := range []string{"=~", "!~", "!=", "="} {
				if strings.HasPrefix(string(s[i:]), op) {
					m.Op = op
					i += len([]rune(op))
					break
				}
			}
			if m.Op == "" {
				return nil, fmt.Errorf("matcher %s has no operator in %q", m.Label, expr)
			}
			skipSpace()
			if i >= len(s) || (s[i] != '"' && s[i] != '\'' && s[i] != '`') {
				return nil, fmt.Errorf("matcher %s has no quoted value in %q", m.Label, expr)
			}
			v, err := readString()
			if err != nil {
				return nil, err
			}
			m.Value = v
			ms = append(ms, m)
		}
	}
	depth := 0
	for i < len(s) {
		c := s[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '"' || c == '\'' || c == '`':
			if _, err := readString(); err != nil {
				return q, err
			}
		case c == '$':
			// A Grafana variable: $name, ${name} or ${name:format}.
			i++
			if i < len(s) && s[i] == '{' {
				for i < len(s) && s[i] != '}' {
					i++
				}
				i++
			} else {
				readIdent()
			}
		case c == '[':
			// A range or subquery: durations and variables only.
			for i < len(s) && s[i] != ']' {
				i++
			}
			if i >= len(s) {
				return q, fmt.Errorf("unterminated […] in %q", expr)
			}
			i++
		case c == '{':
			ms, err := readMatchers()
			if err != nil {
				return q, err
			}
			q.Selectors = append(q.Selectors, selector{Matchers: ms})
		case unicode.IsDigit(c) || c == '.':
			for i < len(s) && (unicode.IsDigit(s[i]) || unicode.IsLetter(s[i]) || s[i] == '.') {
				i++
			}
		case c == '_' || c == ':' || unicode.IsLetter(c):
			word := readIdent()
			skipSpace()
			next := rune(0)
			if i < len(s) {
				next = s[i]
			}
			switch {
			case groupingKeywords[strings.ToLower(word)]:
				if next != '(' {
					continue // group_left without labels
				}
				i++
				for {
					skipSpace()
					if i >= len(s) {
						return q, fmt.Errorf("unterminated %s(…) in %q", word, expr)
					}
					if s[i] == ')' {
						i++
						break
					}
					if s[i] == ',' {
						i++
						continue
					}
					l := readIdent()
					if l == "" {
						return q, fmt.Errorf("bad label list after %s in %q", word, expr)
					}
					q.Grouping = append(q.Grouping, l)
				}
			case operatorKeywords[strings.ToLower(word)], aggregations[strings.ToLower(word)]:
			case next == '(':
				// A function or aggregation; its arguments are read by the loop.
			default:
				sel := selector{Metric: word}
				if next == '{' {
					ms, err := readMatchers()
					if err != nil {
						return q, err
					}
					sel.Matchers = ms
				}
				q.Selectors = append(q.Selectors, sel)
			}
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				return q, fmt.Errorf("unbalanced ) in %q", expr)
			}
			i++
		default:
			i++
		}
	}
	if depth != 0 {
		return q, fmt.Errorf("unbalanced ( in %q", expr)
	}
	return q, nil
}

func TestParseQuery(t *testing.T) {
	q, err := parseQuery(`histogram_quantile(0.95, sum by (le, connector_type) (rate(connector_vendor_request_duration_seconds_bucket{connector_type=~"$connector_type", code!~"2.."}[$__rate_interval]))) / on(connector_type) group_left max(up{job="x"}) > bool 0.5 or vector(0)`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range q.Selectors {
		names = append(names, s.Metric)
	}
	if want := []string{"connector_vendor_request_duration_seconds_bucket", "up"}; !slices.Equal(names, want) {
		t.Errorf("metrics %v, want %v", names, want)
	}
	if want := []string{"le", "connector_type", "connector_type"}; !slices.Equal(q.Grouping, want) {
		t.Errorf("grouping %v, want %v", q.Grouping, want)
	}
	if m := q.Selectors[0].Matchers; len(m) != 2 || m[0] != (matcher{"connector_type", "=~", "$connector_type"}) || m[1] != (matcher{"code", "!~", "2.."}) {
		t.Errorf("matchers %+v", m)
	}
	q, err = parseQuery(`sum(rate(connector_api_requests_total[5m])) without (code)`)
	if err != nil || len(q.Selectors) != 1 || q.Selectors[0].Metric != "connector_api_requests_total" || !slices.Equal(q.Grouping, []string{"code"}) {
		t.Errorf("%+v %v", q, err)
	}
	for _, bad := range []string{`sum(rate(x[5m])`, `x{a="b"`, `x{a}`, `x{a="b}`} {
		if _, err := parseQuery(bad); err == nil {
			t.Errorf("parseQuery(%q) accepted it", bad)
		}
	}
}
