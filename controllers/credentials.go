package controllers

import (
	"errors"

	"github.com/unified-connectors/connector-operator/internal/vendorclient"
)

// fromProblem turns a vendorclient.Problem into a stalling or waiting error; other errors
// (API server trouble) pass through for backoff.
func fromProblem(err error) error {
	var p *vendorclient.Problem
	if !errors.As(err, &p) {
		return err
	}
	if p.Transient {
		return waiting(p.Reason, 0, "%s", p.Message)
	}
	// No requeue: a human must change the Connection, its Secret or its Connector, and
	// the watches on those wake us.
	return stalled(p.Reason, "%s", p.Message)
}
