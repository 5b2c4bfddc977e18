// Package logging builds the operator's logr.Logger on zap through zapr: JSON in
// production, console in development.
package logging

import (
	"fmt"
	"io"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options select the log format and verbosity.
type Options struct {
	// Format is "json" (production) or "console" (development).
	Format string
	// Verbosity is the highest logr V-level printed: 0 info, 1 debug, higher more.
	Verbosity int
}

// New returns a logger writing to w.
func New(o Options, w io.Writer) (logr.Logger, error) {
	var enc zapcore.Encoder
	switch o.Format {
	case "", "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.RFC3339TimeEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return logr.Logger{}, fmt.Errorf("unknown log format %q (want json or console)", o.Format)
	}
	if o.Verbosity < 0 {
		return logr.Logger{}, fmt.Errorf("log verbosity must be >= 0, got %d", o.Verbosity)
	}
	// logr V(n) maps to zap level -n.
	level := zap.NewAtomicLevelAt(zapcore.Level(-o.Verbosity))
	core := zapcore.NewCore(enc, zapcore.AddSync(w), level)
	return zapr.NewLogger(zap.New(core, zap.AddCaller())), nil
}
