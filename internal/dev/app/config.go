package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// ErrInvalidConfig is wrapped by every configuration error, whether it comes
// from flags, environment variables, New or a runtime update.
var ErrInvalidConfig = errors.New("invalid config")

// Config configures a sample app.
type Config struct {
	// Version is reported by "/" and used as the version label of all metrics.
	Version string
	// ErrorRate is the share of "/" requests answered with 500, in [0, 1].
	ErrorRate float64
	// Latency is added to every "/" request; it must not be negative.
	Latency time.Duration
	// Listen is the address the binary listens on (used by Run).
	Listen string
	// Seed seeds the error-injection random source. Zero means "seed from
	// the current time"; set it to get a reproducible sequence of errors.
	Seed uint64
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{Version: "v1", Listen: ":8080"}
}

// Validate checks the runtime-changeable settings.
func (c Config) Validate() error {
	for _, err := range []error{
		checkVersion(c.Version),
		checkErrorRate(c.ErrorRate),
		checkLatency(c.Latency),
	} {
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

func checkVersion(v string) error {
	if v == "" {
		return errors.New("version must not be empty")
	}
	return nil
}

func checkErrorRate(r float64) error {
	if math.IsNaN(r) || r < 0 || r > 1 {
		return fmt.Errorf("error rate %v must be between 0 and 1", r)
	}
	return nil
}

func checkLatency(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("latency %v must not be negative", d)
	}
	return nil
}

// option is one setting that can come from a flag or an environment variable.
type option struct {
	flag, env, usage, example string
	apply                     func(c *Config, raw string) error
}

var options = []option{
	{
		flag: "version", env: "SAMPLE_APP_VERSION", example: "v2",
		usage: "version reported by / and in metric labels (default v1)",
		apply: func(c *Config, raw string) error {
			c.Version = raw
			return checkVersion(raw)
		},
	},
	{
		flag: "error-rate", env: "SAMPLE_APP_ERROR_RATE", example: "0.2",
		usage: "share of / requests answered with 500, between 0 and 1 (default 0)",
		apply: func(c *Config, raw string) error {
			r, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return errors.New("not a number")
			}
			c.ErrorRate = r
			return checkErrorRate(r)
		},
	},
	{
		flag: "latency", env: "SAMPLE_APP_LATENCY", example: "150ms",
		usage: "latency added to each / request, as a Go duration (default 0s)",
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil {
				return errors.New("not a Go duration")
			}
			c.Latency = d
			return checkLatency(d)
		},
	},
	{
		flag: "listen", env: "SAMPLE_APP_LISTEN", example: "127.0.0.1:8080",
		usage: "address to listen on (default :8080)",
		apply: func(c *Config, raw string) error {
			c.Listen = raw
			return nil
		},
	},
}

// ParseConfig builds a Config from command-line flags, falling back to
// SAMPLE_APP_* environment variables read through getenv; flags win over the
// environment, and empty environment variables count as unset. For -h it
// writes the usage to help and returns flag.ErrHelp. Any other error wraps
// ErrInvalidConfig and names the offending flag or variable.
func ParseConfig(args []string, getenv func(string) string, help io.Writer) (Config, error) {
	fs := flag.NewFlagSet("sample-app", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, not printed
	raw := make([]string, len(options))
	for i, o := range options {
		fs.StringVar(&raw[i], o.flag, "", fmt.Sprintf("%s [env %s]", o.usage, o.env))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) && help != nil {
			fmt.Fprintln(help, "Usage of sample-app:")
			fs.SetOutput(help)
			fs.PrintDefaults()
		}
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w (run with -h for usage)", ErrInvalidConfig, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q: sample-app takes flags only", ErrInvalidConfig, fs.Arg(0))
	}

	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := DefaultConfig()
	for i, o := range options {
		var value, source, fix string
		switch {
		case set[o.flag]:
			value, source, fix = raw[i], "-"+o.flag, fmt.Sprintf("-%s %s", o.flag, o.example)
		case getenv(o.env) != "":
			value, source, fix = getenv(o.env), o.env, fmt.Sprintf("%s=%s", o.env, o.example)
		default:
			continue
		}
		if err := o.apply(&cfg, value); err != nil {
			return Config{}, fmt.Errorf("%w: %s %q: %w; use for example %s", ErrInvalidConfig, source, value, err, fix)
		}
	}
	return cfg, nil
}
