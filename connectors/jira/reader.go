package jira

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/unified-connectors/connector-operator/connectors"
	"github.com/unified-connectors/connector-operator/connectors/atlassian"
)

// apiRoot is the REST API root of the deployment: v3 on Cloud, v2 on Data Center.
func (c *Client) apiRoot() string {
	if c.api.IsCloud() {
		return "/rest/api/3"
	}
	return "/rest/api/2"
}

// Containers lists the projects the credential can browse, by key: GET
// /rest/api/3/project/search on Cloud; on Data Center GET /rest/api/2/project, which
// answers every project at once and is paged here.
func (c *Client) Containers(ctx context.Context, cur string, limit int) (connectors.Page[connectors.Container], error) {
	limit = limitOf(limit)
	if !c.api.IsCloud() {
		return c.containersDataCenter(ctx, cur, limit)
	}
	const path = "/rest/api/3/project/search"
	start := 0
	if cur != "" {
		p, err := decodeCursor(cur, c.api.Op(http.MethodGet, path), kindContainers, "")
		if err != nil {
			return connectors.Page[connectors.Container]{}, err
		}
		start = p.Start
	}
	var out struct {
		StartAt int           `json:"startAt"`
		Total   int           `json:"total"`
		IsLast  *bool         `json:"isLast"`
		Values  []projectJSON `json:"values"`
	}
	q := url.Values{"startAt": {strconv.Itoa(start)}, "maxResults": {strconv.Itoa(limit)}, "orderBy": {"key"}}
	if err := c.api.Get(ctx, path, q, &out); err != nil {
		return connectors.Page[connectors.Container]{}, err
	}
	page := connectors.Page[connectors.Container]{Items: containers(out.Values)}
	next := start + len(out.Values)
	last := len(out.Values) == 0 || next >= out.Total
	if out.IsLast != nil {
		last = *out.IsLast || len(out.Values) == 0
	}
	if !last {
		page.NextCursor = cursor{Kind: kindContainers, Start: next}.encode()
	}
	return page, nil
}

func (c *Client) containersDataCenter(ctx context.Context, cur string, limit int) (connectors.Page[connectors.Container], error) {
	const path = "/rest/api/2/project"
	start := 0
	if cur != "" {
		p, err := decodeCursor(cur, c.api.Op(http.MethodGet, path), kindContainers, "")
		if err != nil {
			return connectors.Page[connectors.Container]{}, err
		}
		start = p.Start
	}
	var all []projectJSON
	if err := c.api.Get(ctx, path, nil, &all); err != nil {
		return connectors.Page[connectors.Container]{}, err
	}
	lo := min(start, len(all))
	hi := min(lo+limit, len(all))
	page := connectors.Page[connectors.Container]{Items: containers(all[lo:hi])}
	if hi < len(all) {
		page.NextCursor = cursor{Kind: kindContainers, Start: hi}.encode()
	}
	return page, nil
}

func containers(ps []projectJSON) []connectors.Container {
	out := make([]connectors.Container, len(ps))
	for i, p := range ps {
		out[i] = connectors.Container{ID: p.ID, Key: p.Key, Name: p.Name}
	}
	return out
}

// issuePath is the path of an issue, after checking that ref is an id or a key: it
// becomes a path segment, and "..", "?" or "/" must not reach the URL.
func (c *Client) issuePath(method, ref, suffix string) (string, error) {
	if !isIssueRef(ref) {
		return "", invalid(c.api.Op(method, c.apiRoot()+"/issue/{issueIdOrKey}"+suffix), "invalid issue id or key")
	}
	return c.apiRoot() + "/issue/" + url.PathEscape(ref) + suffix, nil
}

// Item reads one issue by id or key.
func (c *Client) Item(ctx context.Context, id string) (connectors.Item, error) {
	path, err := c.issuePath(http.MethodGet, id, "")
	if err != nil {
		return connectors.Item{}, err
	}
	var is issueJSON
	if err := c.api.Get(ctx, path, url.Values{"fields": {strings.Join(itemFields, ",")}}, &is); err != nil {
		return connectors.Item{}, err
	}
	return c.item(c.api.Op(http.MethodGet, path), is)
}

// ItemMatching reads one issue by id or key, if it matches filter (the Connection's
// spec.scope.filter): the issue is read live, then the search `id = <its id> AND
// (filter)` says whether the filter admits it. An issue the filter leaves out is
// KindNotFound, as a missing one is. The search is Jira's, so an issue updated into the
// filter, or created, counts only once the search index has it (seconds, usually).
func (c *Client) ItemMatching(ctx context.Context, id, filter string) (connectors.Item, error) {
	f := strings.TrimSpace(filter)
	op := c.searchOp()
	if f != "" {
		if err := checkFilter(f); err != nil {
			return connectors.Item{}, invalid(op, err.Error())
		}
	}
	it, err := c.Item(ctx, id)
	if err != nil || f == "" {
		return it, err
	}
	if !isIssueID(it.ID) {
		return connectors.Item{}, c.badAnswer(op, "an issue id is not a number")
	}
	page, err := c.search(ctx, "id = "+it.ID+" AND ("+f+")", []string{"updated"}, 1, position{})
	if err != nil {
		return connectors.Item{}, err
	}
	if len(page.issues) == 0 || page.issues[0].ID != it.ID {
		return connectors.Item{}, &connectors.Error{Kind: connectors.KindNotFound, Vendor: Type, Op: op,
			Status: http.StatusOK, Reason: "no such issue within the connection's filter"}
	}
	return it, nil
}

// Comments lists an issue's comments, oldest first. It reads the issue first: comments
// name neither the issue key (for their URL) nor, when itemID is a key, the issue id.
func (c *Client) Comments(ctx context.Context, itemID, cur string, limit int) (connectors.Page[connectors.Comment], error) {
	limit = limitOf(limit)
	path, err := c.issuePath(http.MethodGet, itemID, "")
	if err != nil {
		return connectors.Page[connectors.Comment]{}, err
	}
	start := 0
	if cur != "" {
		p, err := decodeCursor(cur, c.api.Op(http.MethodGet, path+"/comment"), kindComments, itemID)
		if err != nil {
			return connectors.Page[connectors.Comment]{}, err
		}
		start = p.Start
	}
	var issue struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := c.api.Get(ctx, path, url.Values{"fields": {"project"}}, &issue); err != nil {
		return connectors.Page[connectors.Comment]{}, err
	}
	if !isIssueID(issue.ID) || !isIssueRef(issue.Key) {
		return connectors.Page[connectors.Comment]{}, c.badAnswer(c.api.Op(http.MethodGet, path), "issue without id or key")
	}
	path = c.apiRoot() + "/issue/" + issue.ID + "/comment"
	op := c.api.Op(http.MethodGet, path)
	var out commentsJSON
	q := url.Values{"startAt": {strconv.Itoa(start)}, "maxResults": {strconv.Itoa(limit)}, "orderBy": {"created"}}
	if err := c.api.Get(ctx, path, q, &out); err != nil {
		return connectors.Page[connectors.Comment]{}, err
	}
	page := connectors.Page[connectors.Comment]{Items: make([]connectors.Comment, 0, len(out.Comments))}
	for _, cm := range out.Comments {
		created, err := atlassian.ParseTime(cm.Created)
		if err != nil {
			return connectors.Page[connectors.Comment]{}, c.badAnswer(op, "comment "+cm.ID+": created: "+err.Error())
		}
		updated, err := atlassian.ParseTime(cm.Updated)
		if err != nil {
			return connectors.Page[connectors.Comment]{}, c.badAnswer(op, "comment "+cm.ID+": updated: "+err.Error())
		}
		page.Items = append(page.Items, connectors.Comment{
			ID:        cm.ID,
			ItemID:    issue.ID,
			Author:    cm.Author.person(),
			Text:      bodyText(cm.Body),
			CreatedAt: created,
			UpdatedAt: updated,
			URL:       c.browseURL(issue.Key) + "?focusedCommentId=" + url.QueryEscape(cm.ID),
		})
	}
	if next := start + len(out.Comments); len(out.Comments) > 0 && next < out.Total {
		page.NextCursor = cursor{Kind: kindComments, Scope: itemID, Start: next}.encode()
	}
	return page, nil
}

// createIssueBody is POST /rest/api/{3,2}/issue's IssueUpdateDetails.
type createIssueBody struct {
	Fields createFields `json:"fields"`
}

type createFields struct {
	Project struct {
		Key string `json:"key"`
	} `json:"project"`
	Summary   string `json:"summary"`
	IssueType struct {
		Name string `json:"name"`
	} `json:"issuetype"`
	// Description is an ADF document on Cloud and wiki markup on Data Center.
	Description any `json:"description,omitempty"`
}

// Create adds a Task to the project item.Container with item.Title as summary and
// item.Text as description (paragraphs of plain text), then reads it back. It is never
// retried: a repeat would create a second issue. When the read-back fails the issue
// exists all the same, and Create returns what it knows (id, key, URL, title, text)
// without an error, so that nobody creates it again.
func (c *Client) Create(ctx context.Context, item connectors.NewItem) (connectors.Item, error) {
	path := c.apiRoot() + "/issue"
	op := c.api.Op(http.MethodPost, path)
	project := strings.TrimSpace(item.Container)
	switch {
	case project == "":
		return connectors.Item{}, invalid(op, "container is required")
	case strings.TrimSpace(item.Title) == "":
		return connectors.Item{}, invalid(op, "title is required")
	}
	var body createIssueBody
	body.Fields.Project.Key = project
	body.Fields.Summary = item.Title
	body.Fields.IssueType.Name = "Task"
	if strings.TrimSpace(item.Text) != "" {
		if c.api.IsCloud() {
			body.Fields.Description = atlassian.TextToADF(item.Text)
		} else {
			body.Fields.Description = item.Text
		}
	}
	var created struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := c.api.Do(ctx, atlassian.Request{Method: http.MethodPost, Path: path, Body: body}, &created); err != nil {
		return connectors.Item{}, err
	}
	if !isIssueID(created.ID) {
		return connectors.Item{}, c.badAnswer(op, "created issue has no id")
	}
	if it, err := c.Item(ctx, created.ID); err == nil {
		return it, nil
	}
	text := item.Text
	if c.api.IsCloud() {
		text = atlassian.ADFToText(atlassian.TextToADF(item.Text)) // as Jira will answer it
	}
	return connectors.Item{
		ID: created.ID, Key: created.Key, Kind: connectors.KindIssue, Title: item.Title, Text: text,
		URL: c.browseURL(created.Key), Container: project, Type: Type,
	}, nil
}
