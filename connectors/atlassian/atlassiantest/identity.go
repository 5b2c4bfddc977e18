package atlassiantest

import (
	"net/http"
	"net/url"
	"strings"
)

// jiraUser is Jira's User as /myself answers it (components.schemas.User in the Jira
// Cloud OpenAPI document, which allows no other property).
type jiraUser struct {
	Self             string            `json:"self"`
	AccountID        string            `json:"accountId,omitempty"`
	AccountType      string            `json:"accountType,omitempty"`
	Key              string            `json:"key,omitempty"`
	Name             string            `json:"name,omitempty"`
	EmailAddress     string            `json:"emailAddress,omitempty"`
	AvatarURLs       map[string]string `json:"avatarUrls"`
	DisplayName      string            `json:"displayName"`
	Active           bool              `json:"active"`
	TimeZone         string            `json:"timeZone"`
	Locale           string            `json:"locale"`
	Groups           simpleList        `json:"groups"`
	ApplicationRoles simpleList        `json:"applicationRoles"`
	Expand           string            `json:"expand"`
}

// simpleList is Jira's SimpleListWrapper, answered empty: the fake has no groups or roles.
type simpleList struct {
	Size  int   `json:"size"`
	Items []any `json:"items"`
}

// jiraMyselfCloud answers GET /rest/api/3/myself as Jira Cloud does.
func (s *Server) jiraMyselfCloud(w http.ResponseWriter, r *http.Request, a Account) {
	base := siteBase(r)
	writeJSON(w, http.StatusOK, jiraUser{
		Self:             base + "/rest/api/3/user?accountId=" + url.QueryEscape(a.ID),
		AccountID:        a.ID,
		AccountType:      "atlassian",
		EmailAddress:     a.Email,
		AvatarURLs:       avatars(base, a.ID),
		DisplayName:      a.DisplayName,
		Active:           true,
		TimeZone:         timeZone(a),
		Locale:           "en_US",
		Groups:           simpleList{Items: []any{}},
		ApplicationRoles: simpleList{Items: []any{}},
		Expand:           "groups,applicationRoles",
	})
}

// jiraMyselfDataCenter answers GET /rest/api/2/myself as Jira Data Center does: the user
// is identified by key and name (username), and there is no accountId.
func (s *Server) jiraMyselfDataCenter(w http.ResponseWriter, r *http.Request, a Account) {
	base := siteBase(r)
	writeJSON(w, http.StatusOK, jiraUser{
		Self:             base + "/rest/api/2/user?username=" + url.QueryEscape(username(a)),
		Key:              a.ID,
		Name:             username(a),
		EmailAddress:     a.Email,
		AvatarURLs:       avatars(base, a.ID),
		DisplayName:      a.DisplayName,
		Active:           true,
		TimeZone:         timeZone(a),
		Locale:           "en_US",
		Groups:           simpleList{Items: []any{}},
		ApplicationRoles: simpleList{Items: []any{}},
		Expand:           "groups,applicationRoles",
	})
}

// confluenceUser is Confluence's v1 User (shared/vendor-specs/README.md: accountId,
// displayName, email, accountType on Cloud; userKey and username on Data Center).
type confluenceUser struct {
	Type                   string            `json:"type"`
	AccountID              string            `json:"accountId,omitempty"`
	AccountType            string            `json:"accountType,omitempty"`
	Username               string            `json:"username,omitempty"`
	UserKey                string            `json:"userKey,omitempty"`
	Email                  string            `json:"email,omitempty"`
	PublicName             string            `json:"publicName,omitempty"`
	ProfilePicture         profilePicture    `json:"profilePicture"`
	DisplayName            string            `json:"displayName"`
	TimeZone               string            `json:"timeZone,omitempty"`
	IsExternalCollaborator *bool             `json:"isExternalCollaborator,omitempty"`
	Expandable             map[string]string `json:"_expandable"`
	Links                  map[string]string `json:"_links"`
}

type profilePicture struct {
	Path      string `json:"path"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	IsDefault bool   `json:"isDefault"`
}

// confluenceCurrentUserCloud answers GET /wiki/rest/api/user/current as Confluence Cloud does.
func (s *Server) confluenceCurrentUserCloud(w http.ResponseWriter, r *http.Request, a Account) {
	base := siteBase(r) + "/wiki"
	external := false
	writeJSON(w, http.StatusOK, confluenceUser{
		Type:                   "known",
		AccountID:              a.ID,
		AccountType:            "atlassian",
		Email:                  a.Email,
		PublicName:             a.DisplayName,
		ProfilePicture:         profilePicture{Path: "/wiki/aa-avatar/" + url.PathEscape(a.ID), Width: 48, Height: 48},
		DisplayName:            a.DisplayName,
		TimeZone:               timeZone(a),
		IsExternalCollaborator: &external,
		Expandable:             map[string]string{"operations": "", "personalSpace": ""},
		Links: map[string]string{
			"self":    base + "/rest/api/user?accountId=" + url.QueryEscape(a.ID),
			"base":    base,
			"context": "/wiki",
		},
	})
}

// confluenceCurrentUserDataCenter answers GET /rest/api/user/current as Confluence Data
// Center does (no /wiki prefix): the user is identified by userKey and username.
func (s *Server) confluenceCurrentUserDataCenter(w http.ResponseWriter, r *http.Request, a Account) {
	base := siteBase(r)
	writeJSON(w, http.StatusOK, confluenceUser{
		Type:           "known",
		Username:       username(a),
		UserKey:        a.ID,
		ProfilePicture: profilePicture{Path: "/images/icons/profilepics/default.svg", Width: 48, Height: 48, IsDefault: true},
		DisplayName:    a.DisplayName,
		Expandable:     map[string]string{"status": ""},
		Links: map[string]string{
			"self":    base + "/rest/api/user?key=" + url.QueryEscape(a.ID),
			"base":    base,
			"context": "",
		},
	})
}

// avatars is Jira's AvatarUrlsBean for an account.
func avatars(base, id string) map[string]string {
	out := make(map[string]string, 4)
	for _, size := range []string{"16", "24", "32", "48"} {
		out[size+"x"+size] = base + "/secure/useravatar?size=" + size + "&ownerId=" + url.QueryEscape(id)
	}
	return out
}

// username is the Data Center login: the local part of the email, or the ID without one.
func username(a Account) string {
	if local, _, ok := strings.Cut(a.Email, "@"); ok && local != "" {
		return local
	}
	return a.ID
}

// timeZone is the account's zone, or the site default.
func timeZone(a Account) string {
	if a.TimeZone == "" {
		return "UTC"
	}
	return a.TimeZone
}
