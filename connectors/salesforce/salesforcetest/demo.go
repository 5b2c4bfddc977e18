package salesforcetest

import (
	"fmt"
	"time"
)

// Fixed, public credentials of the demo org (make dev); they are good for this fake only.
const (
	DemoClientID     = "3MVG9fake.demo.connected.app"
	DemoClientSecret = "demo-consumer-secret"
	// DemoIntegrationClientID is a second connected app with the client credentials flow
	// on, running as the demo integration user.
	DemoIntegrationClientID     = "3MVG9fake.demo.integration"
	DemoIntegrationClientSecret = "demo-integration-secret"
)

// Demo returns a started fake org seeded for make dev: the connected apps above, an
// integration user, and a handful of Accounts, Contacts and Cases with comments, modified
// over the last weeks. Call Close when done.
func Demo() *Server {
	s := NewServer()
	s.SeedDemo()
	return s
}

// SeedDemo fills s with Demo's content.
func (s *Server) SeedDemo() {
	integration := s.AddUser(User{Username: "integration@fake-org.example", Name: "Ivy Integration", Email: "integration@fake-org.example", TimeZone: "Europe/Paris"})
	s.AddClient(Client{ID: DemoClientID, Secret: DemoClientSecret})
	s.AddClient(Client{ID: DemoIntegrationClientID, Secret: DemoIntegrationClientSecret, RunAs: integration.ID})

	start := stamp(s.Now().Add(-21 * 24 * time.Hour))
	at := func(i int) time.Time { return start.Add(time.Duration(i) * 7 * time.Hour) }
	industries := []string{"Technology", "Manufacturing", "Retail", "Healthcare", "Energy"}
	names := []string{"Acme Corporation", "Globex", "Initech", "Umbrella Health", "Stark Energy", "Wayne Retail"}
	var accounts []string
	for i, n := range names {
		id, err := s.Insert("Account", Fields{
			"Name": n, "Industry": industries[i%len(industries)], "Website": fmt.Sprintf("https://www.example.com/%d", i),
			"Description": n + " is a demo customer.", "NumberOfEmployees": 50 * (i + 1), "AnnualRevenue": float64(1_000_000 * (i + 1)),
			"CreatedDate": at(i), "LastModifiedDate": at(i), "SystemModstamp": at(i),
		})
		mustDemo(err)
		accounts = append(accounts, id)
	}
	people := [][2]string{{"Dana", "Scully"}, {"Fox", "Mulder"}, {"Leslie", "Knope"}, {"Ron", "Swanson"}, {"April", "Ludgate"}, {"Ben", "Wyatt"}, {"Ann", "Perkins"}, {"Tom", "Haverford"}}
	var contacts []string
	for i, p := range people {
		id, err := s.Insert("Contact", Fields{
			"FirstName": p[0], "LastName": p[1], "Email": fmt.Sprintf("%s.%s@example.com", p[0], p[1]),
			"AccountId": accounts[i%len(accounts)], "CreatedDate": at(10 + i), "LastModifiedDate": at(10 + i), "SystemModstamp": at(10 + i),
		})
		mustDemo(err)
		contacts = append(contacts, id)
	}
	subjects := []string{"Cannot log in", "Invoice shows the wrong amount", "Feature request: export to CSV", "Outage in EU region", "Password reset email never arrives", "Slow dashboard", "Data import failed", "Question about API limits", "Upgrade to the premium plan", "Broken link in the help center"}
	statuses := []string{"New", "Working", "Escalated", "Closed"}
	for i, subj := range subjects {
		id, err := s.Insert("Case", Fields{
			"Subject": subj, "Description": "Customer reports: " + subj + ".", "Status": statuses[i%len(statuses)],
			"Priority": []string{"Low", "Medium", "High"}[i%3], "AccountId": accounts[i%len(accounts)], "ContactId": contacts[i%len(contacts)],
			"CreatedDate": at(20 + i), "LastModifiedDate": at(20 + i), "SystemModstamp": at(20 + i),
		})
		mustDemo(err)
		for c := range 2 {
			_, err := s.Insert("CaseComment", Fields{
				"ParentId": id, "CommentBody": fmt.Sprintf("Comment %d on %q.", c+1, subj), "IsPublished": true,
				"CreatedDate": at(21 + i + c), "LastModifiedDate": at(21 + i + c), "SystemModstamp": at(21 + i + c),
			})
			mustDemo(err)
		}
	}
}

func mustDemo(err error) {
	if err != nil {
		panic("salesforcetest: demo seed: " + err.Error())
	}
}
