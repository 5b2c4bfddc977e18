package confluence

import "github.com/unified-connectors/connector-operator/connectors"

// SetWalkPage sets how many search hits Changes reads at a time, so that tests walk
// several pages of hits with little content.
func SetWalkPage(c connectors.Client, n int) { c.(*Client).walkPage = n }
