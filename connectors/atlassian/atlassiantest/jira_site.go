package atlassiantest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// jira returns s's Jira content (projects, issues, comments), created empty on first use.
func (s *Server) jira() *jiraSite {
	s.jiraOnce.Do(func() { s.jiraState = newJiraSite() })
	return s.jiraState
}

// jiraSite is the Jira content of one fake site: projects, issues and comments. Every
// account may see everything. Its own lock guards it, apart from the Server's.
type jiraSite struct {
	mu       sync.Mutex
	projects []*jiraProject          // in creation order
	issues   map[int64]*jiraIssue    // by id
	byKey    map[string]*jiraIssue   // by upper-case key
	projKey  map[string]*jiraProject // by upper-case key
	// index is what issue search sees (index.go): writes reach it after a lag.
	index *searchIndex[int64, jiraIssue]
	// Ids come from one sequence per kind, as in Jira, starting where Jira's do.
	nextProjectID, nextIssueID, nextCommentID int64
}

func newJiraSite() *jiraSite {
	return &jiraSite{
		issues:        map[int64]*jiraIssue{},
		byKey:         map[string]*jiraIssue{},
		projKey:       map[string]*jiraProject{},
		index:         newSearchIndex[int64, jiraIssue](),
		nextProjectID: 10000,
		nextIssueID:   10000,
		nextCommentID: 10000,
	}
}

type jiraProject struct {
	id      int64
	key     string
	name    string
	lastNum int // the number of the project's last issue key
}

// jiraPerson is an author. On Data Center the account id stands in for the user key.
type jiraPerson struct {
	accountID, displayName, email string
}

// jiraIssueType is one of the fake's issue types, the same in every project.
type jiraIssueType struct {
	id, name, description string
}

var jiraIssueTypes = []jiraIssueType{
	{"10001", "Task", "A small, distinct piece of work."},
	{"10002", "Bug", "A problem or error."},
	{"10003", "Story", "Functionality or a feature expressed as a user goal."},
}

// jiraIssueTypeNamed finds an issue type by name (case-insensitive) or id.
func jiraIssueTypeNamed(name string) (jiraIssueType, bool) {
	for _, t := range jiraIssueTypes {
		if strings.EqualFold(t.name, name) || t.id == name {
			return t, true
		}
	}
	return jiraIssueType{}, false
}

type jiraIssue struct {
	id        int64
	key       string
	num       int
	project   *jiraProject
	issueType string
	summary   string
	// description is the ADF document (Cloud's v3 form), nil when there is none;
	// descText is its plain text (Data Center's v2 form and the text search).
	description json.RawMessage
	descText    string
	reporter    jiraPerson
	creator     jiraPerson
	// created and updated have millisecond precision, as Jira stores them.
	created, updated time.Time
	comments         []*jiraComment
}

type jiraComment struct {
	id               int64
	author           jiraPerson
	body             json.RawMessage // ADF
	bodyText         string
	created, updated time.Time
}

// searchable is the lower-cased text that "~" searches for field (text, summary,
// description, comment).
func (is *jiraIssue) searchable(field string) string {
	var parts []string
	if field == "text" || field == "summary" {
		parts = append(parts, is.summary)
	}
	if field == "text" || field == "description" {
		parts = append(parts, is.descText)
	}
	if field == "text" || field == "comment" {
		for _, c := range is.comments {
			parts = append(parts, c.bodyText)
		}
	}
	return strings.ToLower(strings.Join(parts, "\n"))
}

// findProject finds a project by key or name (case-insensitive) or id. Call with mu held.
func (j *jiraSite) findProject(v string) *jiraProject {
	if p := j.projKey[strings.ToUpper(v)]; p != nil {
		return p
	}
	for _, p := range j.projects {
		if strconv.FormatInt(p.id, 10) == v || strings.EqualFold(p.name, v) {
			return p
		}
	}
	return nil
}

// findIssue finds an issue by key (case-insensitive) or id. Call with mu held.
func (j *jiraSite) findIssue(v string) *jiraIssue {
	if id, err := strconv.ParseInt(v, 10, 64); err == nil {
		return j.issues[id]
	}
	return j.byKey[strings.ToUpper(v)]
}

// projectIssues lists a project's issues (every issue when p is nil), by id. Call with
// mu held.
func (j *jiraSite) projectIssues(p *jiraProject) []*jiraIssue {
	var out []*jiraIssue
	for _, is := range j.issues {
		if p == nil || is.project == p {
			out = append(out, is)
		}
	}
	slices.SortFunc(out, func(a, b *jiraIssue) int { return cmp.Compare(a.id, b.id) })
	return out
}

// addProject adds a project. Call with mu held.
func (j *jiraSite) addProject(key, name string) *jiraProject {
	if p := j.projKey[strings.ToUpper(key)]; p != nil {
		return p
	}
	p := &jiraProject{id: j.nextProjectID, key: strings.ToUpper(key), name: name}
	j.nextProjectID++
	j.projects = append(j.projects, p)
	j.projKey[p.key] = p
	return p
}

// addIssue adds an issue to p. Call with mu held.
func (j *jiraSite) addIssue(p *jiraProject, typ, summary string, description json.RawMessage, reporter jiraPerson, at time.Time) *jiraIssue {
	at = at.Truncate(time.Millisecond)
	p.lastNum++
	is := &jiraIssue{
		id:          j.nextIssueID,
		key:         p.key + "-" + strconv.Itoa(p.lastNum),
		num:         p.lastNum,
		project:     p,
		issueType:   typ,
		summary:     summary,
		description: description,
		descText:    jiraADFText(description),
		reporter:    reporter,
		creator:     reporter,
		created:     at,
		updated:     at,
	}
	j.nextIssueID++
	j.issues[is.id] = is
	j.byKey[is.key] = is
	j.indexIssueLocked(is.id, is)
	return is
}

// addComment adds a comment to is. Call with mu held.
func (j *jiraSite) addComment(is *jiraIssue, author jiraPerson, body json.RawMessage, at time.Time) *jiraComment {
	at = at.Truncate(time.Millisecond)
	c := &jiraComment{id: j.nextCommentID, author: author, body: body, bodyText: jiraADFText(body), created: at, updated: at}
	j.nextCommentID++
	is.comments = append(is.comments, c)
	j.indexIssueLocked(is.id, is)
	return c
}

// jiraSystemUser reports the issues that test helpers create.
var jiraSystemUser = jiraPerson{accountID: "557058:0867a421-a9ee-4659-801a-bc0ee4a4487e", displayName: "Automation for Jira", email: "automation@example.com"}

// AddJiraProject adds a Jira project with key (stored upper-case) and name, and returns
// its id. Adding a key that exists returns the existing project's id.
func (s *Server) AddJiraProject(key, name string) (id string) {
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	return strconv.FormatInt(j.addProject(key, name).id, 10)
}

// CreateIssue adds a Task to the project with projectKey (creating the project if
// needed), as the automation user, with text as its description (one paragraph per
// blank-line separated block), created and updated at at (kept to the millisecond). It
// returns the new issue's key.
func (s *Server) CreateIssue(projectKey, summary, text string, at time.Time) (key string) {
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.findProject(projectKey)
	if p == nil {
		p = j.addProject(projectKey, projectKey)
	}
	return j.addIssue(p, "Task", summary, jiraTextADF(text), jiraSystemUser, at).key
}

// UpdateIssue sets the update time of the issue with key to at (kept to the
// millisecond), as an edit at that instant would. Jira's clock only moves forward; tests
// that want realism pass a time after the issue's current one. It panics when there is
// no such issue, a mistake in the test.
func (s *Server) UpdateIssue(key string, at time.Time) {
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	is := j.findIssue(key)
	if is == nil {
		panic(fmt.Sprintf("atlassiantest: UpdateIssue: no issue %q", key))
	}
	is.updated = at.Truncate(time.Millisecond)
	j.indexIssueLocked(is.id, is)
}

// DeleteIssue deletes the issue with key (with its comments); an unknown key is a no-op.
func (s *Server) DeleteIssue(key string) {
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	if is := j.findIssue(key); is != nil {
		delete(j.issues, is.id)
		delete(j.byKey, is.key)
		j.indexIssueLocked(is.id, nil)
	}
}

// JiraIssueKeys returns the keys of the live issues of the project with projectKey, in
// creation order (nil for an unknown project).
func (s *Server) JiraIssueKeys(projectKey string) []string {
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.findProject(projectKey)
	if p == nil {
		return nil
	}
	var keys []string
	for _, is := range j.projectIssues(p) {
		keys = append(keys, is.key)
	}
	return keys
}

// JiraIssueInfo is what tests need to know about one issue of the fake.
type JiraIssueInfo struct {
	// ID is the numeric issue id, Key the issue key, Project the project key.
	ID, Key, Project string
	// Created and Updated are the issue's times (millisecond precision).
	Created, Updated time.Time
}

// JiraIssue describes the issue with key (or id), and reports whether it exists.
func (s *Server) JiraIssue(key string) (JiraIssueInfo, bool) {
	j := s.jira()
	j.mu.Lock()
	defer j.mu.Unlock()
	is := j.findIssue(key)
	if is == nil {
		return JiraIssueInfo{}, false
	}
	return JiraIssueInfo{ID: strconv.FormatInt(is.id, 10), Key: is.key, Project: is.project.key,
		Created: is.created, Updated: is.updated}, true
}

// jiraADFText is the text of an ADF document for the fake's text search and its Data
// Center answers: the text of its text nodes and the text attributes of mentions,
// emoji and status, with a blank line after each paragraph, as wiki markup has. It is deliberately simpler
// than the connector's converter and independent of it.
func jiraADFText(doc json.RawMessage) string {
	if len(doc) == 0 {
		return ""
	}
	var root any
	if json.Unmarshal(doc, &root) != nil {
		return ""
	}
	var b strings.Builder
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		n, ok := v.(map[string]any)
		if !ok || depth > 100 {
			return
		}
		typ, _ := n["type"].(string)
		if t, ok := n["text"].(string); ok {
			b.WriteString(t)
		}
		if attrs, ok := n["attrs"].(map[string]any); ok && typ != "placeholder" {
			if t, ok := attrs["text"].(string); ok {
				b.WriteString(t)
			}
		}
		if typ == "hardBreak" {
			b.WriteString("\n")
		}
		content, _ := n["content"].([]any)
		for _, c := range content {
			walk(c, depth+1)
		}
		switch typ {
		case "paragraph", "heading", "codeBlock":
			b.WriteString("\n\n") // a blank line separates wiki-markup paragraphs
		case "listItem", "tableRow":
			b.WriteString("\n")
		}
	}
	walk(root, 0)
	text := strings.TrimSpace(b.String())
	for strings.Contains(text, "\n\n\n") {
		text = strings.ReplaceAll(text, "\n\n\n", "\n\n")
	}
	return text
}

// jiraTextADF is an ADF document for text: one paragraph per blank-line separated
// block, hard breaks for single newlines. Empty text is no description (nil).
func jiraTextADF(text string) json.RawMessage {
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	if text == "" {
		return nil
	}
	var paras []any
	for _, block := range strings.Split(text, "\n\n") {
		if strings.TrimSpace(block) == "" {
			continue
		}
		var inline []any
		for i, line := range strings.Split(strings.Trim(block, "\n"), "\n") {
			if i > 0 {
				inline = append(inline, map[string]any{"type": "hardBreak"})
			}
			if line != "" {
				inline = append(inline, map[string]any{"type": "text", "text": line})
			}
		}
		paras = append(paras, map[string]any{"type": "paragraph", "content": inline})
	}
	b, _ := json.Marshal(map[string]any{"type": "doc", "version": 1, "content": paras})
	return b
}
