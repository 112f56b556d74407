// Package step is what every canaryline step shares: its configuration from Tekton params mapped to env (loaded
// with go-envconfig and validated before any API call), its exit codes, its results, its log, and its clients.
package step

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// Exit codes, the same for every step (each Task's description lists them).
const (
	ExitOK = 0
	// ExitError is an error the step could not get past: the API failing after retries, a timeout.
	ExitError = 1
	// ExitInvalid is bad input: a param, a missing object, a missing permission. Nothing was changed.
	ExitInvalid = 2
	// ExitFailed is a verdict: the build failed or was cancelled, the canary is unhealthy.
	ExitFailed = 4
	// ExitBusy is another release of the same application holding the lock. Nothing was changed.
	ExitBusy = 5
	// ExitInconclusive is a verdict that could not be reached: no data, not enough samples, checks in error.
	ExitInconclusive = 6
)

// InconclusiveError is a verdict that could not be reached.
type InconclusiveError struct{ Msg string }

func (e *InconclusiveError) Error() string { return e.Msg }

// BusyError is another release holding the application's lock.
type BusyError struct{ Msg string }

func (e *BusyError) Error() string { return e.Msg }

// InvalidError is bad input. Param names the Tekton param (and env variable) at fault, Fix says what to do.
type InvalidError struct {
	Param string
	Msg   string
	Fix   string
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	if e.Param != "" {
		b.WriteString("param " + e.Param + ": ")
	}
	b.WriteString(e.Msg)
	if e.Fix != "" {
		b.WriteString("; " + e.Fix)
	}
	return b.String()
}

// Invalid returns an InvalidError.
func Invalid(param, fix, format string, args ...any) error {
	return &InvalidError{Param: param, Msg: fmt.Sprintf(format, args...), Fix: fix}
}

// FailedError is a verdict that ends the step with ExitFailed.
type FailedError struct{ Msg string }

func (e *FailedError) Error() string { return e.Msg }

// Failed returns a FailedError.
func Failed(format string, args ...any) error { return &FailedError{Msg: fmt.Sprintf(format, args...)} }

// ExitCode maps an error to the step's exit code.
func ExitCode(err error) int {
	var inv *InvalidError
	var failed *FailedError
	var busy *BusyError
	var inconclusive *InconclusiveError
	switch {
	case errors.As(err, &inconclusive):
		return ExitInconclusive
	case err == nil:
		return ExitOK
	case errors.As(err, &busy):
		return ExitBusy
	case errors.As(err, &inv):
		return ExitInvalid
	case errors.As(err, &failed):
		return ExitFailed
	default:
		return ExitError
	}
}

// Validator is implemented by every step's Config.
type Validator interface {
	Validate() error
}

// Load fills cfg from env with go-envconfig and validates it. A value that does not parse is an InvalidError
// naming its variable.
func Load(ctx context.Context, lookup func(string) (string, bool), cfg Validator) error {
	err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: envconfig.LookuperFunc(lookupOrEmpty(lookup))})
	if err != nil {
		// go-envconfig names the Go field ("NoCache: strconv.ParseBool: ..."); name the param instead.
		field, msg, _ := strings.Cut(err.Error(), ": ")
		param := envNames(reflect.TypeOf(cfg))[field]
		fix := "check the value given to the Task's param"
		switch {
		case strings.Contains(msg, "ParseBool"):
			fix = `say "true" or "false"`
		case strings.Contains(msg, "duration"):
			fix = "give a Go duration such as 90s, 5m or 1h30m"
		case strings.Contains(msg, "ParseInt") || strings.Contains(msg, "ParseFloat"):
			fix = "give a number"
		}
		if param == "" {
			return &InvalidError{Msg: err.Error(), Fix: fix}
		}
		return &InvalidError{Param: param, Msg: msg, Fix: fix}
	}
	return cfg.Validate()
}

// envNames maps a config struct's field names (embedded structs included) to their env variables.
func envNames(t reflect.Type) map[string]string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]string{}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			for k, v := range envNames(f.Type) {
				out[k] = v
			}
			continue
		}
		if tag := f.Tag.Get("env"); tag != "" {
			out[f.Name] = strings.TrimSpace(strings.Split(tag, ",")[0])
		}
	}
	return out
}

// lookupOrEmpty treats an empty variable as unset, as Tekton passes unset params with empty defaults.
func lookupOrEmpty(lookup func(string) (string, bool)) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := lookup(k)
		if ok && strings.TrimSpace(v) == "" {
			return "", false
		}
		return strings.TrimSpace(v), ok
	}
}

// Results writes Tekton results: one file per result in Dir ($(results.<name>.path) is Dir/<name>).
type Results struct {
	Dir string
}

// maxResult and maxResults keep results well under Tekton's 4096-byte termination message, which all results
// of a step share with Tekton's own data.
const (
	maxResult  = 1024
	maxResults = 3072
)

// Write writes the named results, redacted (Redact). An empty Dir writes nothing (a local run without Tekton).
func (r Results) Write(values map[string]string) error {
	if r.Dir == "" {
		return nil
	}
	redacted := make(map[string]string, len(values))
	total := 0
	for name, v := range values {
		redacted[name] = Redact(v)
		total += len(redacted[name])
	}
	values = redacted
	if total > maxResults {
		return fmt.Errorf("results are %d bytes together; they stay under %d", total, maxResults)
	}
	for name, v := range values {
		if len(v) > maxResult {
			return fmt.Errorf("result %s is %d bytes; results stay under %d", name, len(v), maxResult)
		}
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(v), 0o644); err != nil {
			return fmt.Errorf("write result %s: %w", name, err)
		}
	}
	return nil
}

// IO is a step's standard streams, environment and arguments.
type IO struct {
	Stdout, Stderr io.Writer
	Env            func(string) (string, bool)
	// Args are the arguments the step was invoked with (after its name). The steps take their params from the
	// environment only, so any argument is refused as bad input.
	Args []string
}

// NoArgs returns bad input naming args when there are any: the steps take their params from the environment (the
// Task maps each param to an env variable), so an argument is a mistake that would otherwise pass silently.
func NoArgs(args []string) error {
	if len(args) == 0 {
		return nil
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return &InvalidError{Msg: "unexpected arguments " + strings.Join(quoted, " "),
		Fix: "the steps take no arguments: set their params as environment variables (APP=shop, not --app shop)"}
}

// Common are the params every step has.
type Common struct {
	// ResultsDir is where Tekton results go: /tekton/results in a TaskRun; empty writes none.
	ResultsDir string `env:"RESULTS_DIR, default=/tekton/results"`
	// Debug logs debug records too.
	Debug bool `env:"DEBUG, default=false"`
}

// Step is a step's configuration: validated, with the common params.
type Step interface {
	Validator
	common() *Common
}

func (c *Common) common() *Common { return c }

// Main is the body of every step: refuse arguments (NoArgs) and load cfg from env (bad input exits 2 before any
// API call), run, write the results, and map the error to the exit code. Errors and verdicts are logged with the
// reason.
func Main[C Step](ctx context.Context, sio IO, cfg C, run func(context.Context, C, *slog.Logger) (map[string]string, error)) int {
	err := NoArgs(sio.Args)
	if err == nil {
		err = Load(ctx, sio.Env, cfg)
	}
	if err != nil {
		NewLogger(sio.Stderr, false).Error(err.Error())
		return ExitCode(err)
	}
	log := NewLogger(sio.Stderr, cfg.common().Debug)
	slog.SetDefault(log) // for what logs without a logger at hand: the API transport's retries
	results, err := run(ctx, cfg, log)
	if werr := (Results{Dir: cfg.common().ResultsDir}).Write(results); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		var failed *FailedError
		var inconclusive *InconclusiveError
		if errors.As(err, &failed) {
			log.Error("failed: " + err.Error())
		} else if errors.As(err, &inconclusive) {
			log.Warn("inconclusive: " + err.Error())
		} else {
			log.Error(err.Error())
		}
	}
	return ExitCode(err)
}
