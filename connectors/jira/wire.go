package jira

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// itemFields are the issue fields an Item needs. Jira Cloud's search returns only ids
// unless fields are named, and *all would cost bandwidth and page size for nothing.
var itemFields = []string{"summary", "description", "project", "reporter", "creator", "created", "updated", "issuetype"}

// issueJSON is the part of Jira's IssueBean the connector reads, on Cloud (v3) and Data
// Center (v2) alike.
type issueJSON struct {
	ID     string     `json:"id"`
	Key    string     `json:"key"`
	Fields fieldsJSON `json:"fields"`
}

type fieldsJSON struct {
	Summary string `json:"summary"`
	// Description is an ADF document on Cloud, a wiki-markup string on Data Center, and
	// null when the issue has none.
	Description json.RawMessage `json:"description"`
	Project     struct {
		ID   string `json:"id"`
		Key  string `json:"key"`
		Name string `json:"name"`
	} `json:"project"`
	Reporter *userJSON `json:"reporter"`
	Creator  *userJSON `json:"creator"`
	Created  string    `json:"created"`
	Updated  string    `json:"updated"`
}

// userJSON identifies a person: accountId on Cloud, key (and name, the username) on
// Data Center.
type userJSON struct {
	AccountID   string `json:"accountId"`
	Key         string `json:"key"`
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
}

// person normalizes u; nil is nobody.
func (u *userJSON) person() connectors.Person {
	if u == nil {
		return connectors.Person{}
	}
	id := u.AccountID
	if id == "" {
		id = u.Key
	}
	if id == "" {
		id = u.Name
	}
	return connectors.Person{ID: id, DisplayName: u.DisplayName}
}

// bodyText is the plain text of a description or comment body: ADF on Cloud, wiki
// markup (shown as is) on Data Center.
func bodyText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return ""
	case raw[0] == '"':
		var s string
		_ = json.Unmarshal(raw, &s) // a malformed string leaves "", as ADFToText does
		return s
	default:
		return atlassian.ADFToText(raw)
	}
}

// searchJSON is a page of Jira Cloud's search/jql (issues, nextPageToken, isLast) or of
// Data Center's search (issues, startAt, total).
type searchJSON struct {
	Issues        []issueJSON `json:"issues"`
	NextPageToken string      `json:"nextPageToken"`
	IsLast        *bool       `json:"isLast"`
	StartAt       int         `json:"startAt"`
	Total         int         `json:"total"`
}

// commentsJSON is Jira's PageOfComments.
type commentsJSON struct {
	StartAt  int `json:"startAt"`
	Total    int `json:"total"`
	Comments []struct {
		ID      string          `json:"id"`
		Author  *userJSON       `json:"author"`
		Body    json.RawMessage `json:"body"`
		Created string          `json:"created"`
		Updated string          `json:"updated"`
	} `json:"comments"`
}

// projectJSON is the part of Jira's Project the connector reads.
type projectJSON struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

// item normalizes an issue read through op. A timestamp Jira did not write is an
// unreadable answer: sync order depends on it.
func (c *Client) item(op string, is issueJSON) (connectors.Item, error) {
	created, err := atlassian.ParseTime(is.Fields.Created)
	if err != nil {
		return connectors.Item{}, c.badAnswer(op, fmt.Sprintf("issue %s: created: %v", is.ID, err))
	}
	updated, err := atlassian.ParseTime(is.Fields.Updated)
	if err != nil {
		return connectors.Item{}, c.badAnswer(op, fmt.Sprintf("issue %s: updated: %v", is.ID, err))
	}
	author := is.Fields.Reporter.person()
	if author.ID == "" {
		author = is.Fields.Creator.person()
	}
	return connectors.Item{
		ID:        is.ID,
		Key:       is.Key,
		Kind:      connectors.KindIssue,
		Title:     is.Fields.Summary,
		Text:      bodyText(is.Fields.Description),
		URL:       c.browseURL(is.Key),
		Container: is.Fields.Project.Key,
		Author:    author,
		CreatedAt: created,
		UpdatedAt: updated,
		Type:      Type,
	}, nil
}

// items normalizes a page of issues.
func (c *Client) items(op string, issues []issueJSON) ([]connectors.Item, error) {
	out := make([]connectors.Item, 0, len(issues))
	for _, is := range issues {
		it, err := c.item(op, is)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// browseURL is where a person views an issue: the site itself, even when calls go
// through the OAuth2 gateway.
func (c *Client) browseURL(key string) string {
	return c.api.SiteURL("/browse/" + url.PathEscape(key))
}

// badAnswer is a 2xx answer the connector cannot use.
func (c *Client) badAnswer(op, reason string) error {
	return &connectors.Error{Kind: connectors.KindUnavailable, Vendor: Type, Op: op, Status: http.StatusOK,
		Reason: "unusable answer: " + reason}
}

// invalid is a request the connector refuses before calling Jira.
func invalid(op, reason string) error {
	return &connectors.Error{Kind: connectors.KindInvalid, Vendor: Type, Op: op, Reason: reason}
}
