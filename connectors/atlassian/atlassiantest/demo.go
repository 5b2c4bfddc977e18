package atlassiantest

// DemoAccounts returns the fixed, public accounts of the demo site (make dev and
// hack/fake-atlassian); they are good for this fake only. Alice's zone is not UTC on
// purpose: a connector that sends UTC dates in JQL/CQL misses changes for her.
func DemoAccounts() []Account {
	return []Account{
		{
			ID:          "5b10a2844c20165700ede21a",
			DisplayName: "Alice Example",
			Email:       "alice@example.com",
			TimeZone:    "Australia/Sydney",
			APIToken:    "demo-jira-token",
			PAT:         "demo-pat",
		},
		{
			ID:          "5b10a2844c20165700ede21b",
			DisplayName: "Bob Example",
			Email:       "bob@example.com",
			TimeZone:    "UTC",
			APIToken:    "demo-bob-token",
			PAT:         "demo-bob-pat",
		},
	}
}
