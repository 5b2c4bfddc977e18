package atlassiantest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// JiraSeed says what SeedJira generates.
type JiraSeed struct {
	// Projects is how many projects: PRJA, PRJB, … PRJZ, PRJAA, ….
	Projects int
	// IssuesPerProject and CommentsPerIssue size the content.
	IssuesPerProject, CommentsPerIssue int
	// Seed makes the content reproducible: the same JiraSeed on a fresh Server gives the
	// same projects, issues, ids, texts and times.
	Seed int64
	// Start is the earliest update time. Issues are created before it and updated after
	// it, minutes apart, in an order unrelated to their ids; in every project with at
	// least six issues, three share one update millisecond and two more share one minute.
	Start time.Time
}

// SeedJira adds generated projects, issues and comments. Descriptions and comments are
// ADF with paragraphs, lists, mentions, emoji, links and code. Seeding again with the
// same project count adds issues to the same projects.
func (s *Server) SeedJira(o JiraSeed) {
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x6a697261)) // "jira"
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	start := o.Start.Truncate(time.Millisecond)
	for p := range o.Projects {
		letters := jiraProjectLetters(p)
		proj := j.addProject("PRJ"+letters, "Project "+letters)
		updated := jiraSeedTimes(rng, start, o.IssuesPerProject)
		for k := range o.IssuesPerProject {
			// Created hours before Start, in id order; every fifth shares the previous one's
			// millisecond, as issues created by one bulk import may.
			created := start.Add(-time.Duration(o.IssuesPerProject-k) * 37 * time.Minute).Add(time.Duration(rng.IntN(60000)) * time.Millisecond)
			if k%5 == 4 {
				created = j.lastCreated(proj, created)
			}
			typ := jiraIssueTypes[rng.IntN(len(jiraIssueTypes))].name
			reporter := jiraPeople[rng.IntN(len(jiraPeople))]
			var desc json.RawMessage
			if rng.IntN(10) != 0 { // some issues have no description
				desc = jiraSeedDescription(rng, proj.key, proj.lastNum+1)
			}
			is := j.addIssue(proj, typ, jiraSeedSummary(rng), desc, reporter, created)
			for c := range o.CommentsPerIssue {
				span := updated[k].Sub(created)
				at := created.Add(span * time.Duration(c+1) / time.Duration(o.CommentsPerIssue+1))
				j.addComment(is, jiraPeople[rng.IntN(len(jiraPeople))], jiraSeedComment(rng), at)
			}
			is.updated = updated[k]
			j.indexIssueLocked(is.id, is)
		}
	}
}

// lastCreated is the creation time of p's latest issue, or fallback when it has none.
// Call with mu held.
func (j *jiraSite) lastCreated(p *jiraProject, fallback time.Time) time.Time {
	if is := j.byKey[fmt.Sprintf("%s-%d", p.key, p.lastNum)]; is != nil {
		return is.created
	}
	return fallback
}

// jiraProjectLetters names the i-th project: A … Z, AA, AB, ….
func jiraProjectLetters(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('A'+(i-1)%26)) + s
	}
	return s
}

// jiraSeedTimes returns n update times at or after start, shuffled: mostly 20 s to 3
// min apart, often several in one minute, sometimes several in one millisecond.
func jiraSeedTimes(rng *rand.Rand, start time.Time, n int) []time.Time {
	times := make([]time.Time, n)
	t := start
	for k := range times {
		switch r := rng.IntN(8); {
		case k > 0 && r == 0: // the same millisecond as the previous one
			times[k] = times[k-1]
		case k > 0 && r <= 2: // the same minute as the previous one
			minute := times[k-1].Truncate(time.Minute)
			lo := minute
			if lo.Before(start) {
				lo = start
			}
			times[k] = lo.Add(time.Duration(rng.Int64N(int64(minute.Add(time.Minute).Sub(lo)/time.Millisecond))) * time.Millisecond)
		default:
			t = t.Add(20*time.Second + time.Duration(rng.Int64N(int64(160*time.Second/time.Millisecond)))*time.Millisecond)
			times[k] = t
		}
	}
	if n >= 6 { // guaranteed collisions: three in one millisecond, two in one minute
		times[1], times[2] = times[0], times[0]
		minute := times[3].Truncate(time.Minute)
		if other := minute.Add(time.Duration(rng.IntN(60000)) * time.Millisecond); !other.Before(start) && !other.Equal(times[3]) {
			times[4] = other
		} else {
			times[4] = times[3].Add(time.Millisecond)
		}
	}
	rng.Shuffle(n, func(a, b int) { times[a], times[b] = times[b], times[a] })
	return times
}

// jiraPeople report and comment on seeded issues.
var jiraPeople = []jiraPerson{
	{accountID: "5b10a2844c20165700ede21g", displayName: "Mia Krystof", email: "mia@example.com"},
	{accountID: "5b10ac8d82e05b22cc7d4ef5", displayName: "Emma Richards", email: "emma@example.com"},
	{accountID: "712020:4e7c23b1-bb0a-4f6e-9d5a-3c1fa5a8c001", displayName: "Ravi Shankar", email: "ravi@example.com"},
	{accountID: "5d53f3cbc6b9320d9ea5bdc2", displayName: "Jonas Müller", email: "jonas@example.com"},
	{accountID: "63c9b1e2f0f1a27e3c7e0a11", displayName: "Aiko Tanaka", email: "aiko@example.com"},
}

var (
	jiraVerbs      = []string{"Fix", "Investigate", "Add", "Remove", "Document", "Refactor", "Speed up", "Migrate"}
	jiraObjects    = []string{"login timeout", "billing export", "search index", "webhook retries", "dark mode", "CSV import", "rate limiter", "audit log"}
	jiraQualifiers = []string{"on staging", "for EU customers", "in the mobile app", "after the upgrade", "behind the proxy", "for large projects"}
	jiraWords      = strings.Fields("the deploy pipeline fails when cache is cold and retries exhaust budget while users wait " +
		"for export results so we should measure latency under load before rollout because metrics show spikes " +
		"after midnight in every region including sydney and los angeles with timezone offsets")
	jiraEmoji = [][2]string{{":smile:", "😄"}, {":thumbsup:", "👍"}, {":warning:", "⚠️"}}
)

func jiraSeedSummary(rng *rand.Rand) string {
	return jiraVerbs[rng.IntN(len(jiraVerbs))] + " " + jiraObjects[rng.IntN(len(jiraObjects))] + " " + jiraQualifiers[rng.IntN(len(jiraQualifiers))]
}

func jiraSentence(rng *rand.Rand) string {
	n := 6 + rng.IntN(10)
	w := make([]string, n)
	for i := range w {
		w[i] = jiraWords[rng.IntN(len(jiraWords))]
	}
	s := strings.Join(w, " ")
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// adfText and friends build ADF nodes for the seeded content.
func adfText(s string) map[string]any { return map[string]any{"type": "text", "text": s} }

func adfPara(inline ...map[string]any) map[string]any {
	return map[string]any{"type": "paragraph", "content": inline}
}

func jiraSeedDescription(rng *rand.Rand, projectKey string, num int) json.RawMessage {
	var blocks []map[string]any
	person := jiraPeople[rng.IntN(len(jiraPeople))]
	emoji := jiraEmoji[rng.IntN(len(jiraEmoji))]
	blocks = append(blocks, adfPara(
		adfText(jiraSentence(rng)+" "),
		map[string]any{"type": "mention", "attrs": map[string]any{"id": person.accountID, "text": "@" + person.displayName}},
		adfText(" please check "),
		map[string]any{"type": "emoji", "attrs": map[string]any{"shortName": emoji[0], "text": emoji[1]}},
		map[string]any{"type": "hardBreak"},
		map[string]any{"type": "text", "text": jiraSentence(rng), "marks": []any{map[string]any{"type": "strong"}}},
	))
	if rng.IntN(2) == 0 {
		var items []any
		for range 2 + rng.IntN(2) {
			items = append(items, map[string]any{"type": "listItem", "content": []any{adfPara(adfText(jiraSentence(rng)))}})
		}
		blocks = append(blocks, map[string]any{"type": "bulletList", "content": items})
	}
	if rng.IntN(4) == 0 {
		blocks = append(blocks, map[string]any{"type": "codeBlock", "attrs": map[string]any{"language": "shell"},
			"content": []any{adfText("kubectl get connections -A\nkubectl describe connection demo")}})
	}
	if num > 1 && rng.IntN(3) == 0 {
		blocks = append(blocks, adfPara(
			adfText("Related to "),
			map[string]any{"type": "inlineCard", "attrs": map[string]any{"url": fmt.Sprintf("https://acme.atlassian.net/browse/%s-%d", projectKey, 1+rng.IntN(num-1))}},
			adfText(", now "),
			map[string]any{"type": "status", "attrs": map[string]any{"text": "IN PROGRESS", "color": "blue"}},
			adfText(" until "),
			map[string]any{"type": "date", "attrs": map[string]any{"timestamp": "1735603200000"}},
		))
	}
	b, _ := json.Marshal(map[string]any{"type": "doc", "version": 1, "content": blocks})
	return b
}

func jiraSeedComment(rng *rand.Rand) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"type": "doc", "version": 1, "content": []any{adfPara(adfText(jiraSentence(rng)))}})
	return b
}
