// Command sample-app serves the canary-release sample application.
//
// Usage:
//
//	sample-app [-version v2] [-error-rate 0.1] [-latency 150ms] [-listen :8080]
//	sample-app dial HOST:PORT...   (try a TCP connection to each, print the outcome; exit 1 if any failed)
//	sample-app eat SIZE_MB         (allocate and touch SIZE_MB of memory, then wait for SIGTERM)
//	sample-app write FILE TEXT     (write TEXT to FILE: a termination message)
//	sample-app cat FILE            (print FILE: a downward API file)
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
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/canaryline/canaryline/internal/dev/app"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "dial":
			return dial(os.Args[2:])
		case "eat":
			return eat(ctx, os.Args[2:])
		case "write":
			if len(os.Args) != 4 || os.WriteFile(os.Args[2], []byte(os.Args[3]), 0o644) != nil {
				return 1
			}
			return 0
		case "cat":
			data, err := os.ReadFile(os.Args[len(os.Args)-1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			os.Stdout.Write(data)
			return 0
		}
	}

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

// dial tries a TCP connection to each address and prints "ADDR: ok" or "ADDR: the error": what a pod can reach
// on the real node (tests check that nothing outside the machine can be).
func dial(addrs []string) int {
	code := 0
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 3*time.Second)
		if err != nil {
			fmt.Printf("%s: %v\n", a, err)
			code = 1
			continue
		}
		c.Close()
		fmt.Printf("%s: ok\n", a)
	}
	return code
}

// eat allocates and touches size MB, then waits for SIGTERM: a container over its memory limit is OOM-killed.
func eat(ctx context.Context, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: sample-app eat SIZE_MB")
		return 2
	}
	mb, err := strconv.Atoi(args[0])
	if err != nil || mb < 1 {
		fmt.Fprintln(os.Stderr, "sample-app eat: SIZE_MB must be a positive number")
		return 2
	}
	var held [][]byte
	for range mb {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1
		}
		held = append(held, b)
	}
	fmt.Printf("holding %d MB\n", len(held))
	<-ctx.Done()
	return 0
}
