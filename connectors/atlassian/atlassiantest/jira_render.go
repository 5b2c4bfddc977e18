package atlassiantest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // account zones must not depend on the machine running the tests
)

// jiraView renders the fake's Jira data for one request: links start at the site (or
// gateway) the client addressed, times are in the caller's zone as Jira renders them,
// and Data Center (/rest/api/2) shapes replace Cloud's (/rest/api/3) where they differ:
// descriptions and comment bodies are wiki-markup strings, users have key and name.
type jiraView struct {
	base string // siteBase(r)
	api  string // "/rest/api/3" or "/rest/api/2"
	dc   bool
	loc  *time.Location
}

func newJiraView(r *http.Request, a Account) jiraView {
	dc := strings.HasPrefix(r.URL.Path, "/rest/api/2/")
	v := jiraView{base: siteBase(r), api: "/rest/api/3", dc: dc, loc: jiraLocation(a)}
	if dc {
		v.api = "/rest/api/2"
	}
	return v
}

// jiraLocations caches time.LoadLocation by zone name.
var jiraLocations sync.Map // string → *time.Location

// jiraLocation is the account's zone; an unknown zone is the site default, UTC.
func jiraLocation(a Account) *time.Location {
	name := timeZone(a)
	if v, ok := jiraLocations.Load(name); ok {
		return v.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = time.UTC
	}
	jiraLocations.Store(name, loc)
	return loc
}

// time renders t as Jira does, in the caller's zone: 2021-01-18T23:45:00.000+1100.
func (v jiraView) time(t time.Time) string {
	return t.In(v.loc).Format("2006-01-02T15:04:05.000-0700")
}

// jiraProjectJSON is Jira's Project (components.schemas.Project).
type jiraProjectJSON struct {
	Expand         string            `json:"expand,omitempty"`
	Self           string            `json:"self"`
	ID             string            `json:"id"`
	Key            string            `json:"key"`
	Name           string            `json:"name"`
	AvatarURLs     map[string]string `json:"avatarUrls"`
	ProjectTypeKey string            `json:"projectTypeKey"`
	Simplified     bool              `json:"simplified"`
	Style          string            `json:"style,omitempty"`
	IsPrivate      bool              `json:"isPrivate"`
	Properties     map[string]any    `json:"properties,omitempty"`
}

func (v jiraView) project(p *jiraProject, full bool) jiraProjectJSON {
	id := strconv.FormatInt(p.id, 10)
	out := jiraProjectJSON{
		Self:           v.base + v.api + "/project/" + id,
		ID:             id,
		Key:            p.key,
		Name:           p.name,
		AvatarURLs:     map[string]string{},
		ProjectTypeKey: "software",
	}
	for size, name := range map[string]string{"16x16": "xsmall", "24x24": "small", "32x32": "medium", "48x48": "large"} {
		out.AvatarURLs[size] = v.base + "/secure/projectavatar?size=" + name + "&pid=" + id
	}
	if full {
		out.Expand = "description,lead,issueTypes,url,projectKeys,permissions,insight"
		out.Style = "classic"
		out.Properties = map[string]any{}
	}
	return out
}

// jiraUserJSON is Jira's UserDetails, as issues and comments carry it.
type jiraUserJSON struct {
	Self         string            `json:"self"`
	AccountID    string            `json:"accountId,omitempty"`
	AccountType  string            `json:"accountType,omitempty"`
	Key          string            `json:"key,omitempty"`
	Name         string            `json:"name,omitempty"`
	EmailAddress string            `json:"emailAddress,omitempty"`
	AvatarURLs   map[string]string `json:"avatarUrls"`
	DisplayName  string            `json:"displayName"`
	Active       bool              `json:"active"`
}

func (v jiraView) user(p jiraPerson) jiraUserJSON {
	out := jiraUserJSON{AvatarURLs: avatars(v.base, p.accountID), DisplayName: p.displayName, Active: true}
	if v.dc {
		name := username(Account{ID: p.accountID, Email: p.email})
		out.Self = v.base + v.api + "/user?username=" + url.QueryEscape(name)
		out.Key, out.Name, out.EmailAddress = p.accountID, name, p.email
	} else {
		// Cloud hides e-mail addresses by default (profile visibility).
		out.Self = v.base + v.api + "/user?accountId=" + url.QueryEscape(p.accountID)
		out.AccountID, out.AccountType = p.accountID, "atlassian"
	}
	return out
}

// jiraIssueTypeJSON is Jira's IssueTypeDetails.
type jiraIssueTypeJSON struct {
	Self           string `json:"self"`
	ID             string `json:"id"`
	Description    string `json:"description"`
	IconURL        string `json:"iconUrl"`
	Name           string `json:"name"`
	Subtask        bool   `json:"subtask"`
	AvatarID       int    `json:"avatarId"`
	HierarchyLevel int    `json:"hierarchyLevel"`
}

func (v jiraView) issueType(name string) jiraIssueTypeJSON {
	t, _ := jiraIssueTypeNamed(name)
	return jiraIssueTypeJSON{
		Self:        v.base + v.api + "/issuetype/" + t.id,
		ID:          t.id,
		Description: t.description,
		IconURL:     v.base + "/rest/api/2/universal_avatar/view/type/issuetype/avatar/10318?size=medium",
		Name:        t.name,
		AvatarID:    10318,
	}
}

// jiraFields is the set of fields a request asked for (fields=…): names, *all or
// *navigable, and -name exclusions. Unknown names are ignored, as Jira ignores them.
type jiraFields struct {
	all     bool
	include map[string]bool
	exclude map[string]bool
}

// jiraKnownFields are the fields the fake can render.
var jiraKnownFields = []string{"summary", "description", "project", "reporter", "creator", "created", "updated", "issuetype", "comment"}

// parseJiraFields reads fields parameters (each may be comma-separated); def applies
// when there are none.
func parseJiraFields(values []string, def string) jiraFields {
	f := jiraFields{include: map[string]bool{}, exclude: map[string]bool{}}
	if len(values) == 0 {
		values = []string{def}
	}
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			switch name = strings.TrimSpace(name); {
			case name == "*all" || name == "*navigable":
				f.all = true
			case strings.HasPrefix(name, "-"):
				f.exclude[name[1:]] = true
			case name != "":
				f.include[name] = true
			}
		}
	}
	return f
}

func (f jiraFields) has(name string) bool {
	return (f.all || f.include[name]) && !f.exclude[name]
}

// idsOnly reports whether no field the fake renders was asked for.
func (f jiraFields) idsOnly() bool {
	for _, name := range jiraKnownFields {
		if f.has(name) {
			return false
		}
	}
	return true
}

// jiraIssueJSON is Jira's IssueBean.
type jiraIssueJSON struct {
	Expand string         `json:"expand,omitempty"`
	ID     string         `json:"id"`
	Self   string         `json:"self,omitempty"`
	Key    string         `json:"key,omitempty"`
	Fields map[string]any `json:"fields,omitempty"`
}

// issue renders is with the fields asked for. bare (search/jql without fields) is the
// id alone, which is all Jira Cloud's search answers by default.
func (v jiraView) issue(is *jiraIssue, f jiraFields, bare bool) jiraIssueJSON {
	id := strconv.FormatInt(is.id, 10)
	if bare {
		return jiraIssueJSON{ID: id}
	}
	out := jiraIssueJSON{
		Expand: "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
		ID:     id,
		Self:   v.base + v.api + "/issue/" + id,
		Key:    is.key,
		Fields: map[string]any{},
	}
	put := func(name string, value func() any) {
		if f.has(name) {
			out.Fields[name] = value()
		}
	}
	put("summary", func() any { return is.summary })
	// Jira answers "description": null for an issue without one, which the OpenAPI
	// document does not allow (fields values are not nullable there); the fake leaves
	// the field out instead, which clients must read the same way.
	if v.dc && is.descText != "" {
		put("description", func() any { return is.descText })
	} else if !v.dc && is.description != nil {
		put("description", func() any { return is.description })
	}
	put("project", func() any { return v.project(is.project, false) })
	put("reporter", func() any { return v.user(is.reporter) })
	put("creator", func() any { return v.user(is.creator) })
	put("created", func() any { return v.time(is.created) })
	put("updated", func() any { return v.time(is.updated) })
	put("issuetype", func() any { return v.issueType(is.issueType) })
	put("comment", func() any {
		comments := make([]jiraCommentJSON, 0, len(is.comments))
		for _, c := range is.comments {
			comments = append(comments, v.comment(is, c))
		}
		return jiraCommentPage{StartAt: 0, MaxResults: len(comments), Total: len(comments), Comments: comments}
	})
	return out
}

// jiraCommentJSON is Jira's Comment.
type jiraCommentJSON struct {
	Self         string       `json:"self"`
	ID           string       `json:"id"`
	Author       jiraUserJSON `json:"author"`
	Body         any          `json:"body"`
	UpdateAuthor jiraUserJSON `json:"updateAuthor"`
	Created      string       `json:"created"`
	Updated      string       `json:"updated"`
	JSDPublic    bool         `json:"jsdPublic"`
}

func (v jiraView) comment(is *jiraIssue, c *jiraComment) jiraCommentJSON {
	id := strconv.FormatInt(c.id, 10)
	var body any = c.body
	if v.dc {
		body = c.bodyText
	}
	return jiraCommentJSON{
		Self:         v.base + v.api + "/issue/" + strconv.FormatInt(is.id, 10) + "/comment/" + id,
		ID:           id,
		Author:       v.user(c.author),
		Body:         body,
		UpdateAuthor: v.user(c.author),
		Created:      v.time(c.created),
		Updated:      v.time(c.updated),
		JSDPublic:    true,
	}
}

// jiraCommentPage is Jira's PageOfComments.
type jiraCommentPage struct {
	StartAt    int               `json:"startAt"`
	MaxResults int               `json:"maxResults"`
	Total      int               `json:"total"`
	Comments   []jiraCommentJSON `json:"comments"`
}

// jiraFieldErrors answers 400 with Jira's ErrorCollection keyed by field, as issue
// creation does.
func jiraFieldErrors(w http.ResponseWriter, errs map[string]string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": errs})
}

// decodeJiraBody decodes a JSON request body of at most 1 MiB into v, refusing unknown
// properties when strict, and answers 400 as Jira does when it cannot.
func decodeJiraBody(w http.ResponseWriter, r *http.Request, v any, strict bool) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		msg := "The request body is not valid JSON."
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			msg = "Unrecognized field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + "."
		}
		writeError(w, r, http.StatusBadRequest, msg)
		return false
	}
	return true
}
