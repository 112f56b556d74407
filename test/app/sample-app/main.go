// Command sample-app serves the canary-release sample application.
//
// Usage:
//
//	sample-app [-version v2] [-error-rate 0.1] [-latency 150ms] [-listen :8080]
//
// Each flag falls back to an environment variable (SAMPLE_APP_VERSION,
// SAMPLE_APP_ERROR_RATE, SAMPLE_APP_LATENCY, SAMPLE_APP_LISTEN). It exits
// with 0 after a clean shutdown on SIGINT or SIGTERM, 2 for configuration
// errors and 1 for any other error.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/canaryline/canaryline/test/app"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, app.ErrInvalidConfig):
		log.Error("bad configuration", "err", err)
		return 2
	default:
		log.Error("sample-app failed", "err", err)
		return 1
	}
}
