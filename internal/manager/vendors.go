package manager

// The vendor connectors the operator ships. Each registers its connectors.Provider from
// init; nothing else in the operator names a vendor (test/contract checks it), so adding
// one is its package plus one line here.
import (
	_ "github.com/unified-connectors/connector-operator/connectors/confluence"
	_ "github.com/unified-connectors/connector-operator/connectors/jira"
	_ "github.com/unified-connectors/connector-operator/connectors/postgresql"
	_ "github.com/unified-connectors/connector-operator/connectors/salesforce"
)
