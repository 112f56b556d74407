package build

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/canaryline/canaryline/internal/runtime/osclient"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// logFollower streams a build's log (builds/{name}/log?follow=true through the REST client; openshift/client-go
// has no log helper). It asks for timestamps, so that when the stream breaks it can reconnect from the last
// second it saw (sinceTime) and drop the lines it already printed: nothing is printed twice or lost.
type logFollower struct {
	builds   osclient.BuildV1Interface
	ns, name string
	out      io.Writer
	log      *slog.Logger

	last     time.Time // timestamp of the last line printed
	atLast   int       // lines printed with exactly that timestamp
	printed  int
	plain    bool // the server sent lines without timestamps: dedupe by count
	attempts int
}

// follow streams until the build has ended and its log is complete, or ctx ends.
func (f *logFollower) follow(ctx context.Context) {
	backoff := wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 1 << 30, Cap: 5 * time.Second}
	for ctx.Err() == nil {
		f.attempts++
		err := f.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		b, gerr := f.builds.Builds(f.ns).Get(ctx, f.name, metav1.GetOptions{})
		if gerr == nil && terminal(b.Status.Phase) && err == errStreamEnded {
			return
		}
		if err != errStreamEnded {
			f.log.Debug("build log stream broke; reconnecting", "build", f.name, "error", err)
		} else {
			f.log.Debug("build log stream ended before the build; reconnecting", "build", f.name)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff.Step()):
		}
	}
}

func (f *logFollower) stream(ctx context.Context) error {
	req := f.builds.RESTClient().Get().Namespace(f.ns).Resource("builds").Name(f.name).SubResource("log").
		Param("follow", "true").Param("timestamps", "true")
	if f.printed > 0 && !f.plain {
		req = req.Param("sinceTime", f.last.UTC().Truncate(time.Second).Format(time.RFC3339))
	}
	rc, err := req.Stream(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	skip := 0 // lines to skip when resuming without timestamps
	if f.plain {
		skip = f.printed
	}
	atLast := 0 // lines seen in this stream with the last printed timestamp
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		ts, text, ok := splitTimestamp(line)
		if !ok {
			if !f.plain && f.printed == 0 {
				f.plain = true
			}
			if f.plain {
				if skip > 0 {
					skip--
					continue
				}
				f.emit(text)
				continue
			}
			text, ts = line, f.last // a line without a timestamp in a timestamped stream: keep it with the last
		}
		switch {
		case f.printed > 0 && ts.Before(f.last):
			continue
		case f.printed > 0 && ts.Equal(f.last):
			if atLast < f.atLast {
				atLast++
				continue
			}
			f.atLast++
			atLast++
		default:
			f.last, f.atLast, atLast = ts, 1, 1
		}
		f.emit(text)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errStreamEnded
}

func (f *logFollower) emit(text string) {
	f.printed++
	fmt.Fprintln(f.out, step.Redact(text))
}

// splitTimestamp splits "2006-01-02T15:04:05.999999999Z text" into its time and text.
func splitTimestamp(line string) (time.Time, string, bool) {
	ts, text, ok := strings.Cut(line, " ")
	if !ok {
		ts, text = line, ""
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, line, false
	}
	return t, text, true
}
