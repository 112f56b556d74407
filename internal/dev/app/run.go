package app

import (
	"context"
	"io"
	"log/slog"
	"net"
)

// Run is the sample-app binary: it parses args and the environment (see
// ParseConfig), serves until ctx is cancelled and logs to stderr, including a
// line "listening on HOST:PORT" once the listener is up. Errors wrapping
// ErrInvalidConfig are configuration errors; flag.ErrHelp means -h was given.
func Run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := ParseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	srv, err := New(cfg)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	err = srv.ListenAndServe(ctx, cfg.Listen, func(addr net.Addr) {
		log.Info("listening on "+addr.String(),
			"version", cfg.Version, "errorRate", cfg.ErrorRate, "latency", cfg.Latency)
	})
	if err != nil {
		return err
	}
	log.Info("shut down cleanly")
	return nil
}
