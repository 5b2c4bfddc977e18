// Command kubectl-connectors is connector-operator's kubectl plugin: put it on PATH and run
// `kubectl connectors get`, `status conn/NAME`, `sync`, `resync`, `suspend`, `resume`.
// The logic lives in internal/plugin.
//
//	go install github.com/unified-connectors/connector-operator/cmd/kubectl-connectors@latest
package main

import (
	"os"

	"github.com/unified-connectors/connector-operator/internal/plugin"
)

func main() { os.Exit(plugin.Run()) }
