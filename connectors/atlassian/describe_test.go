package atlassian

import "testing"

func TestPKCEExceptAtAtlassian(t *testing.T) {
	pkce := Describe(Jira).OAuth.PKCE
	for u, want := range map[string]bool{
		"https://auth.atlassian.com/authorize":  false,
		"https://AUTH.atlassian.com/authorize":  false,
		"https://login.example.com/oauth2/auth": true,
		"http://127.0.0.1:8080/authorize":       true,
	} {
		if got := pkce(u); got != want {
			t.Errorf("PKCE(%s) = %v, want %v", u, got, want)
		}
	}
}
